// CLIP's byte-level BPE tokenizer (OpenAI `simple_tokenizer` / Hugging Face `CLIPTokenizer`), fed
// by a Hugging Face style `vocab.json` + `merges.txt` pair. Output ids match what ComfyUI gets from
// transformers for SD1.x CLIP-L, including its handling of literal special tokens in the prompt.

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { cleanText, type TextCleanup } from './text-cleanup.js';

export type { TextCleanup } from './text-cleanup.js';

export const START_TOKEN = '<|startoftext|>';
export const END_TOKEN = '<|endoftext|>';
const END_OF_WORD = '</w>';

export interface ClipTokenizerOptions {
  /** Text cleanup before BPE; see TextCleanup. Default `ftfy`. */
  cleanup?: TextCleanup;
  /** Pad token as a vocab string or id. Default: the end token, as ComfyUI pads SD1.x CLIP-L. */
  pad?: string | number;
  /** Words whose BPE result is remembered. Default 20 000; 0 disables the cache. */
  cacheSize?: number;
}

/**
 * Byte -> printable character table of GPT-2/CLIP: bytes that are visible Latin-1 characters map to
 * themselves, the other 68 are shifted to U+0100 onwards so that every byte has a visible symbol
 * (space becomes `Ġ`), which keeps merges.txt a plain text file.
 */
function byteToCharTable(): string[] {
  const table: string[] = new Array(256);
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    const visible = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCharCode(visible ? b : 0x100 + shifted++);
  }
  return table;
}

const BYTE_TO_CHAR = byteToCharTable();
const CHAR_TO_BYTE = new Map(BYTE_TO_CHAR.map((ch, b) => [ch, b]));
const utf8 = new TextEncoder();

// CLIP's pre-tokenizer: letter runs, single digits, runs of other non-blank characters. Blanks are
// the `regex` module's `\s` (White_Space), not JavaScript's.
const WORD_RE =
  /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\p{White_Space}\p{L}\p{N}]+/giu;
const LITERAL_SPECIAL_RE = /(<\|startoftext\|>|<\|endoftext\|>)/;

export class ClipTokenizer {
  readonly startId: number;
  readonly endId: number;
  readonly padId: number;
  readonly cleanup: TextCleanup;

  private readonly vocab: Map<string, number>;
  private readonly ranks: Map<string, number>;
  private readonly cache = new Map<string, number[]>();
  private readonly cacheSize: number;
  private inverse: string[] | undefined;

  constructor(vocab: Record<string, number>, merges: string | string[], opts: ClipTokenizerOptions = {}) {
    this.vocab = new Map(Object.entries(vocab));
    const lines = typeof merges === 'string' ? merges.split(/\r?\n/) : merges;
    this.ranks = new Map();
    for (const raw of lines) {
      const line = raw.trim();
      // Hugging Face files start with `#version: 0.2`; hand-written tiny ones may not.
      if (line === '' || line.startsWith('#version')) continue;
      const parts = line.split(' ');
      if (parts.length !== 2) throw new Error(`merges: malformed line ${JSON.stringify(raw)}`);
      if (!this.ranks.has(line)) this.ranks.set(line, this.ranks.size);
    }
    this.startId = this.requireId(START_TOKEN, 'start');
    this.endId = this.requireId(END_TOKEN, 'end');
    const pad = opts.pad ?? END_TOKEN;
    this.padId = typeof pad === 'number' ? pad : this.requireId(pad, 'pad');
    this.cleanup = opts.cleanup ?? 'ftfy';
    this.cacheSize = opts.cacheSize ?? 20_000;
  }

  /**
   * Loads `vocab.json` and `merges.txt` from a folder. Never downloads: a missing file is an error
   * that says where the files are expected.
   */
  static fromFolder(dir: string, opts: ClipTokenizerOptions = {}): ClipTokenizer {
    const folder = path.resolve(dir);
    const vocabPath = path.join(folder, 'vocab.json');
    const mergesPath = path.join(folder, 'merges.txt');
    const missing = [vocabPath, mergesPath].filter((p) => !existsSync(p));
    if (missing.length > 0) {
      throw new Error(
        `CLIP tokenizer files not found in ${folder} (missing: ${missing.map((p) => path.basename(p)).join(', ')}). ` +
          'Put the vocab.json and merges.txt of openai/clip-vit-large-patch14 there, e.g. under ' +
          '<data dir>/models/tokenizers/clip-vit-large-patch14/, or point to an existing ComfyUI ' +
          'install\'s comfy/sd1_tokenizer/ folder, which holds the same two files.',
      );
    }
    let vocab: unknown;
    try {
      vocab = JSON.parse(readFileSync(vocabPath, 'utf8'));
    } catch (err) {
      throw new Error(`CLIP tokenizer: cannot parse ${vocabPath}: ${(err as Error).message}`);
    }
    if (typeof vocab !== 'object' || vocab === null || Array.isArray(vocab)) {
      throw new Error(`CLIP tokenizer: ${vocabPath} must be a JSON object of token -> id`);
    }
    return new ClipTokenizer(vocab as Record<string, number>, readFileSync(mergesPath, 'utf8'), opts);
  }

  get vocabSize(): number {
    return this.vocab.size;
  }

  tokenToId(token: string): number | undefined {
    return this.vocab.get(token);
  }

  /**
   * Token ids of a prompt without start/end tokens. Literal `<|startoftext|>` / `<|endoftext|>` in
   * the text become those tokens, as transformers splits them out before cleanup.
   */
  encode(text: string): number[] {
    const ids: number[] = [];
    for (const piece of text.split(LITERAL_SPECIAL_RE)) {
      if (piece === START_TOKEN) ids.push(this.startId);
      else if (piece === END_TOKEN) ids.push(this.endId);
      else if (piece !== '') this.encodeCleaned(cleanText(piece, this.cleanup), ids);
    }
    return ids;
  }

  /** What transformers' `tokenizer(text)["input_ids"]` returns: start + ids + end, no truncation. */
  encodeWithSpecials(text: string): number[] {
    return [this.startId, ...this.encode(text), this.endId];
  }

  /** Joins BPE tokens back into text (lossy: cleanup and lowercasing are not undone). */
  decode(ids: readonly number[]): string {
    if (!this.inverse) {
      this.inverse = [];
      for (const [token, id] of this.vocab) this.inverse[id] = token;
    }
    const text = ids.map((id) => this.inverse![id] ?? '').join('');
    const bytes: number[] = [];
    let out = '';
    const flush = (): void => {
      out += new TextDecoder().decode(Uint8Array.from(bytes));
      bytes.length = 0;
    };
    for (let i = 0; i < text.length; i++) {
      if (text.startsWith(END_OF_WORD, i)) {
        flush();
        out += ' ';
        i += END_OF_WORD.length - 1;
        continue;
      }
      const b = CHAR_TO_BYTE.get(text[i]);
      if (b === undefined) {
        flush();
        out += text[i];
      } else bytes.push(b);
    }
    flush();
    return out.trim();
  }

  private encodeCleaned(text: string, ids: number[]): void {
    for (const match of text.matchAll(WORD_RE)) {
      const word = match[0];
      // The split pattern lists the specials first (case-insensitively) and CLIP's BPE cache maps
      // them to themselves, so a special that appears only after cleanup still becomes one token.
      const special = word.toLowerCase();
      if (special === START_TOKEN || special === END_TOKEN) {
        ids.push(special === START_TOKEN ? this.startId : this.endId);
        continue;
      }
      for (const id of this.bpeIds(word)) ids.push(id);
    }
  }

  private bpeIds(word: string): number[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    let encoded = '';
    for (const b of utf8.encode(word)) encoded += BYTE_TO_CHAR[b];
    // transformers maps symbols missing from a (small) vocab to the unknown token, `<|endoftext|>`.
    const ids = this.bpe(encoded).map((sym) => this.vocab.get(sym) ?? this.endId);
    if (this.cacheSize > 0) {
      // Prompts repeat the same few thousand words; dropping everything when full keeps it simple.
      if (this.cache.size >= this.cacheSize) this.cache.clear();
      this.cache.set(word, ids);
    }
    return ids;
  }

  /** Merge adjacent symbols by merges.txt priority until no ranked pair is left. */
  private bpe(encoded: string): string[] {
    let symbols = Array.from(encoded);
    symbols[symbols.length - 1] += END_OF_WORD;
    while (symbols.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const rank = this.ranks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = i;
        }
      }
      if (best < 0) break;
      const first = symbols[best];
      const second = symbols[best + 1];
      const merged: string[] = [];
      for (let i = 0; i < symbols.length;) {
        if (symbols[i] === first && i + 1 < symbols.length && symbols[i + 1] === second) {
          merged.push(first + second);
          i += 2;
        } else {
          merged.push(symbols[i]);
          i += 1;
        }
      }
      symbols = merged;
    }
    return symbols;
  }

  private requireId(token: string, role: string): number {
    const id = this.vocab.get(token);
    if (id === undefined) throw new Error(`CLIP tokenizer: ${role} token ${JSON.stringify(token)} is not in vocab.json`);
    return id;
  }
}
