import { describe, expect, it } from 'vitest';
import { ClipTokenizer } from '../../runtime/text/index.js';
import { shapesTokenizerFiles, SHAPES_WORDS } from '../../runtime/shapes/tokenizer.js';
import { shapesVocabSize } from '../../runtime/shapes/arch.js';
import { COLOUR_NAMES, SHAPE_KINDS } from '../../runtime/shapes/dataset.js';

describe('shapes tokenizer', () => {
  const files = shapesTokenizerFiles();
  const tok = new ClipTokenizer(files.vocab, files.merges, { cleanup: 'basic' });

  it('makes every caption word one token', () => {
    for (const w of SHAPES_WORDS) expect(tok.encode(w), w).toHaveLength(1);
    for (const w of [...COLOUR_NAMES, ...SHAPE_KINDS]) expect(SHAPES_WORDS).toContain(w);
    const ids = tok.encode('a red circle on a blue background');
    expect(ids).toHaveLength(7);
    expect(tok.decode(ids).trim()).toBe('a red circle on a blue background');
  });

  it('keeps ids dense with the special tokens last, and still spells unknown words byte by byte', () => {
    const ids = Object.values(files.vocab).sort((a, b) => a - b);
    expect(ids).toEqual(ids.map((_, i) => i));
    expect(tok.endId).toBe(shapesVocabSize() - 1);
    expect(tok.startId).toBe(shapesVocabSize() - 2);
    expect(tok.encode('purple').length).toBeGreaterThan(1);
  });
});
