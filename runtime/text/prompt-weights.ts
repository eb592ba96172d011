// ComfyUI's prompt weighting and 77-token windowing (comfy/sd1_clip.py: escape_important,
// parse_parentheses, token_weights, SDTokenizer.tokenize_with_weights), reproduced quirk for quirk so
// that a workflow's conditioning sees the same tokens and weights as in ComfyUI.

import type { ClipTokenizer } from './clip-tokenizer.js';
import { PY_SPACE, pySplit, pyStrip } from './text-cleanup.js';

export interface WeightedSegment {
  text: string;
  weight: number;
}

/** A vocab token, or one row of a textual-inversion embedding, with its emphasis weight. */
export type ChunkToken =
  | { id: number; weight: number }
  | { embedding: string; row: number; weight: number };

/** Resolves the name written after `embedding:` to a loaded embedding, or undefined if none. */
export type EmbeddingLookup = (name: string) => { name: string; rows: number } | undefined;

export interface TokenizeWeightsOptions {
  /** Window size including start and end tokens. Default 77. */
  maxLength?: number;
  /** Pad id. Default: the tokenizer's pad id. */
  padId?: number;
  /** Groups at least this long may be split across windows; shorter ones move whole. Default 8. */
  maxWordLength?: number;
  /**
   * Embedding resolver. Without one, `embedding:name` is ordinary text, as in ComfyUI when the
   * tokenizer has no embedding directory.
   */
  embeddings?: EmbeddingLookup;
  /** Receives ComfyUI's warning text for embeddings that are not found. */
  onWarning?: (message: string) => void;
}

// `\(` and `\)` are hidden behind NUL-prefixed markers while parentheses are parsed.
const ESC_CLOSE = '\0\x01';
const ESC_OPEN = '\0\x02';

export function escapeImportant(text: string): string {
  return text.replaceAll('\\)', ESC_CLOSE).replaceAll('\\(', ESC_OPEN);
}

export function unescapeImportant(text: string): string {
  return text.replaceAll(ESC_CLOSE, ')').replaceAll(ESC_OPEN, '(');
}

/**
 * Splits text into top-level `( ... )` groups and the text between them. The depth counter may go
 * negative on a stray `)`, after which no group is recognised: ComfyUI keeps such text literal.
 */
export function parseParentheses(text: string): string[] {
  const items: string[] = [];
  let current = '';
  let depth = 0;
  for (const ch of text) {
    if (ch === '(') {
      if (depth === 0) {
        if (current) items.push(current);
        current = '(';
      } else current += ch;
      depth += 1;
    } else if (ch === ')') {
      depth -= 1;
      if (depth === 0) {
        items.push(current + ')');
        current = '';
      } else current += ch;
    } else current += ch;
  }
  if (current) items.push(current);
  return items;
}

const PY_SPACE_RE = new RegExp(`[${PY_SPACE}]`, 'g');
const DIGITS = '\\d(?:_?\\d)*';
const PY_FLOAT_RE = new RegExp(
  `^[+-]?(?:(?:${DIGITS}(?:\\.(?:${DIGITS})?)?|\\.${DIGITS})(?:[eE][+-]?${DIGITS})?|inf(?:inity)?|nan)$`,
  'i',
);
const NON_ASCII_DIGIT_RE = /(?![0-9])\p{Nd}/gu;

/** Value of a Unicode decimal digit: Nd characters come in contiguous runs that start at zero. */
function digitValue(ch: string): number {
  let cp = ch.codePointAt(0)!;
  let n = 0;
  while (/\p{Nd}/u.test(String.fromCodePoint(cp - 1))) {
    cp -= 1;
    n += 1;
  }
  return n % 10;
}

/**
 * Python's `float(s)`: surrounding whitespace, underscores between digits, `1.`/`.5`, exponents,
 * inf/nan and non-ASCII decimal digits are accepted. Returns undefined where Python raises.
 */
export function parsePythonFloat(s: string): number | undefined {
  const body = pyStrip(s.replace(PY_SPACE_RE, ' ')).replace(NON_ASCII_DIGIT_RE, (d) =>
    String(digitValue(d)),
  );
  if (!PY_FLOAT_RE.test(body)) return undefined;
  const lower = body.toLowerCase();
  if (lower.endsWith('nan')) return NaN;
  if (lower.endsWith('inf') || lower.endsWith('infinity')) return lower.startsWith('-') ? -Infinity : Infinity;
  return Number(body.replaceAll('_', ''));
}

/**
 * ComfyUI's `token_weights`: `(x)` multiplies by 1.1, `(x:w)` sets the weight to w (the last colon
 * counts, and only if what follows parses as a Python float), nesting recurses.
 */
export function tokenWeights(text: string, weight: number): WeightedSegment[] {
  const out: WeightedSegment[] = [];
  for (let item of parseParentheses(text)) {
    if (item.length >= 2 && item.startsWith('(') && item.endsWith(')')) {
      item = item.slice(1, -1);
      let inner = weight * 1.1;
      const colon = item.lastIndexOf(':');
      if (colon > 0) {
        const explicit = parsePythonFloat(item.slice(colon + 1));
        if (explicit !== undefined) {
          inner = explicit;
          item = item.slice(0, colon);
        }
      }
      out.push(...tokenWeights(item, inner));
    } else out.push({ text: item, weight });
  }
  return out;
}

/** The parser output for a prompt: segments with escapes resolved, before tokenization. */
export function parsePromptWeights(text: string): WeightedSegment[] {
  return tokenWeights(escapeImportant(text), 1.0).map((s) => ({ text: unescapeImportant(s.text), weight: s.weight }));
}

const EMBEDDING_PREFIX = 'embedding:';

function stripChar(s: string, ch: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && s[a] === ch) a++;
  while (b > a && s[b - 1] === ch) b--;
  return s.slice(a, b);
}

/** One `embedding:` piece: the embedding tokens (if found) and the text left to tokenize. */
function resolveEmbedding(
  piece: string,
  weight: number,
  opts: TokenizeWeightsOptions & { embeddings: EmbeddingLookup },
): { group?: ChunkToken[]; leftover: string } {
  const written = stripChar(piece.slice(EMBEDDING_PREFIX.length), '\n');
  const words = pySplit(written);
  // ComfyUI raises on a bare `embedding:`; treating it as a missing embedding is the useful reading.
  let name = words[0] ?? '';
  let leftover = words.slice(1).join(' ');
  let found = name ? opts.embeddings(name) : undefined;
  if (!found) {
    const stripped = stripChar(name, ',');
    if (stripped.length < name.length) {
      found = stripped ? opts.embeddings(stripped) : undefined;
      // ComfyUI keeps `name[len(stripped):]`, counted in code points.
      leftover = `${Array.from(name).slice(Array.from(stripped).length).join('')} ${leftover}`;
      name = stripped;
    }
  }
  if (!found) {
    opts.onWarning?.(`warning, embedding:${written} does not exist, ignoring`);
    return { leftover };
  }
  const group: ChunkToken[] = [];
  for (let row = 0; row < found.rows; row++) group.push({ embedding: found.name, row, weight });
  return { group, leftover };
}

/** Token groups, one per piece that ComfyUI hands to the tokenizer separately. */
function tokenGroups(tok: ClipTokenizer, text: string, opts: TokenizeWeightsOptions): ChunkToken[][] {
  const groups: ChunkToken[][] = [];
  const embeddings = opts.embeddings;
  for (const segment of parsePromptWeights(text)) {
    const [head, ...rest] = segment.text.split(/ embedding:|\nembedding:/);
    const pieces = [head, ...rest.map((p) => EMBEDDING_PREFIX + p)].filter((p) => p !== '');
    for (let piece of pieces) {
      if (embeddings && piece.startsWith(EMBEDDING_PREFIX)) {
        const { group, leftover } = resolveEmbedding(piece, segment.weight, { ...opts, embeddings });
        if (group) groups.push(group);
        if (leftover === '') continue;
        piece = leftover;
      }
      groups.push(tok.encode(piece).map((id) => ({ id, weight: segment.weight })));
    }
  }
  return groups;
}

/**
 * ComfyUI's `tokenize_with_weights` for one CLIP: windows of `maxLength` tokens, each
 * `[start, ...content, end, pad...]`. A group shorter than `maxWordLength` that does not fit in the
 * current window moves whole to the next one; longer groups are cut at the window boundary.
 * The empty prompt gives one window of start, end and padding.
 */
export function tokenizeWithWeights(tok: ClipTokenizer, text: string, opts: TokenizeWeightsOptions = {}): ChunkToken[][] {
  const maxLength = opts.maxLength ?? 77;
  const maxWordLength = opts.maxWordLength ?? 8;
  const padId = opts.padId ?? tok.padId;
  const pad = (): ChunkToken => ({ id: padId, weight: 1.0 });
  const end = (): ChunkToken => ({ id: tok.endId, weight: 1.0 });
  const newWindow = (): ChunkToken[] => [{ id: tok.startId, weight: 1.0 }];

  let batch = newWindow();
  const windows = [batch];
  for (let group of tokenGroups(tok, text, opts)) {
    const large = group.length >= maxWordLength;
    while (group.length > 0) {
      if (group.length + batch.length > maxLength - 1) {
        const room = maxLength - batch.length - 1;
        if (large) {
          batch.push(...group.slice(0, room), end());
          group = group.slice(room);
        } else {
          batch.push(end());
          for (let i = 0; i < room; i++) batch.push(pad());
        }
        batch = newWindow();
        windows.push(batch);
      } else {
        batch.push(...group);
        group = [];
      }
    }
  }
  batch.push(end());
  while (batch.length < maxLength) batch.push(pad());
  return windows;
}
