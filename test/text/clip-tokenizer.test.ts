import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ClipTokenizer } from '../../runtime/text/clip-tokenizer.js';
import { ftfyFixText, basicClean } from '../../runtime/text/text-cleanup.js';
import { parsePythonFloat, tokenizeWithWeights } from '../../runtime/text/prompt-weights.js';
import { findEmbeddingFile } from '../../runtime/text/embedding-files.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'resflow-clip-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// A hand-made vocab in the Hugging Face layout: specials deliberately not at 49406/49407, no byte
// table, and only the merges needed for "cat".
const TINY_VOCAB = {
  '<|startoftext|>': 0,
  '<|endoftext|>': 1,
  '<pad>': 2,
  c: 3,
  a: 4,
  't</w>': 5,
  ca: 6,
  'cat</w>': 7,
  '!</w>': 8,
  'a</w>': 9,
  'd': 10,
  'o': 11,
  'g</w>': 12,
};
const TINY_MERGES = '#version: 0.2\nc a\nca t</w>\n';

function tinyFolder(name: string, files: Record<string, string>): string {
  const dir = path.join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const [file, body] of Object.entries(files)) writeFileSync(path.join(dir, file), body);
  return dir;
}

describe('ClipTokenizer.fromFolder', () => {
  it('names the folder and where the files belong when they are missing', () => {
    const dir = tinyFolder('only-vocab', { 'vocab.json': JSON.stringify(TINY_VOCAB) });
    let message = '';
    try {
      ClipTokenizer.fromFolder(dir);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain(dir);
    expect(message).toContain('missing: merges.txt');
    expect(message).toContain('models/tokenizers/clip-vit-large-patch14/');
    expect(message).toContain('comfy/sd1_tokenizer/');
  });

  it('reports a vocab without the special tokens', () => {
    expect(() => new ClipTokenizer({ a: 0 }, '')).toThrow(/<\|startoftext\|>/);
  });
});

describe('tiny vocab', () => {
  const dir = tinyFolder('tiny', { 'vocab.json': JSON.stringify(TINY_VOCAB), 'merges.txt': TINY_MERGES });
  const tok = ClipTokenizer.fromFolder(dir);

  it('looks the special ids up in the vocab', () => {
    expect([tok.startId, tok.endId, tok.padId]).toEqual([0, 1, 1]);
    expect(ClipTokenizer.fromFolder(dir, { pad: '<pad>' }).padId).toBe(2);
    expect(ClipTokenizer.fromFolder(dir, { pad: 0 }).padId).toBe(0);
  });

  it('applies merges by rank and maps unknown symbols to the end token', () => {
    expect(tok.encode('Cat!  A')).toEqual([7, 8, 9]);
    // "dog": d, o known; g</w> known; no merges -> three symbols. "x" is not in the vocab.
    expect(tok.encode('dog x')).toEqual([10, 11, 12, 1]);
    expect(tok.encodeWithSpecials('cat')).toEqual([0, 7, 1]);
    expect(tok.decode([7, 8, 9])).toBe('cat ! a');
  });

  it('builds ComfyUI windows with a configurable length and pad', () => {
    const padded = ClipTokenizer.fromFolder(dir, { pad: '<pad>' });
    const windows = tokenizeWithWeights(padded, '(cat:1.5) a', { maxLength: 6 });
    expect(windows.map((w) => w.map((t) => ('id' in t ? [t.id, t.weight] : null)))).toEqual([
      [[0, 1], [7, 1.5], [9, 1], [1, 1], [2, 1], [2, 1]],
    ]);
    const empty = tokenizeWithWeights(padded, '', { maxLength: 4 });
    expect(empty.map((w) => w.map((t) => ('id' in t ? t.id : -1)))).toEqual([[0, 1, 2, 2]]);
    // Four short groups of one token in windows with room for three: the fourth moves on.
    const split = tokenizeWithWeights(padded, '(cat)(cat)(cat)(cat)', { maxLength: 5 });
    expect(split.map((w) => w.map((t) => ('id' in t ? t.id : -1)))).toEqual([
      [0, 7, 7, 7, 1],
      [0, 7, 1, 2, 2],
    ]);
  });
});

describe('Python float() as ComfyUI uses it for (text:weight)', () => {
  it.each([
    [' 1.25 ', 1.25], ['1e-1', 0.1], ['.5', 0.5], ['2.', 2], ['-1', -1], ['0', 0], ['1_5', 15],
    ['+3', 3], ['1E2', 100], ['١٫', undefined], ['١', 1], ['inf', Infinity], ['-Infinity', -Infinity],
  ] as const)('%j -> %j', (s, v) => {
    expect(parsePythonFloat(s)).toBe(v);
  });

  it.each(['abc', '', ' ', '1.2.3', '_1', '1_', '1__5', '1_.5', '1e', 'e1', '.', '0x10', '1 5'])('%j is rejected', (s) => {
    expect(parsePythonFloat(s)).toBeUndefined();
  });

  it('parses nan', () => {
    expect(Number.isNaN(parsePythonFloat('NaN'))).toBe(true);
  });
});

describe('ftfy subset', () => {
  it('decodes entities in repeated passes and all-caps Latin names', () => {
    expect(ftfyFixText('&amp;amp; &EACUTE; &SZLIG; &AMP; &nosuch;')).toBe('& É SS & &nosuch;');
    expect(ftfyFixText('&#0; &#x80; &#65x;')).toBe('\ufffd € &#65x;');
  });

  it('stops decoding entities from the first line holding a literal <', () => {
    expect(ftfyFixText('a &amp;\n<b> &amp;\n&amp;')).toBe('a &\n<b> &amp;\n&amp;');
  });

  it('repairs UTF-8 mojibake but leaves ordinary accented text alone', () => {
    expect(ftfyFixText('caf\u00c3\u00a9 \u00e2\u20ac\u0153quoted\u00e2\u20ac\x9d \u00f0\u0178\u02dc\u20ac')).toBe('café "quoted" 😀');
    expect(ftfyFixText('naïve Straße“ ÆSIR Œuvre')).toBe('naïve Straße" ÆSIR Œuvre');
  });

  it('applies the character-level fixes', () => {
    expect(ftfyFixText('ﬁ ﬅ Ｈｉ　x \x1b[1mb\x1b[0m \x00\ufeff\u200b \x85 \ud800')).toBe('fi ſt Hi x b \u200b \u2026 \ufffd');
  });
});

describe('BasicTokenizer cleanup', () => {
  it('drops control and format characters, spaces CJK ideographs, keeps kana together', () => {
    expect(basicClean('a\u200bb\u00adc\u3000東京タワー  İ ΟΔΟΣ')).toBe('abc 東 京 タワー i̇ οδος');
  });
});

describe('embedding files', () => {
  const root = tinyFolder('embeddings', { 'style.pt': 'x', 'exact': 'x' });
  const sub = tinyFolder('embeddings/sub', { 'deep.safetensors': 'x' });
  tinyFolder('outside', { 'secret.pt': 'x' });

  it('finds names as written, with an extension, and in subfolders, but not outside', () => {
    expect(findEmbeddingFile([root], 'style')).toBe(path.join(root, 'style.pt'));
    expect(findEmbeddingFile([root], 'style.pt')).toBe(path.join(root, 'style.pt'));
    expect(findEmbeddingFile([root], 'exact')).toBe(path.join(root, 'exact'));
    expect(findEmbeddingFile([root], 'deep')).toBe(path.join(sub, 'deep.safetensors'));
    expect(findEmbeddingFile([root], 'sub/deep')).toBe(path.join(sub, 'deep.safetensors'));
    expect(findEmbeddingFile([root], '../outside/secret')).toBeUndefined();
    expect(findEmbeddingFile([root, path.join(tmp, 'missing')], 'nothing')).toBeUndefined();
  });
});
