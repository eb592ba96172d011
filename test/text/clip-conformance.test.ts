// Conformance against ComfyUI's own tokenizer output for 140 prompts (see the README next to the data).
// The data lives outside the repository (test/shared-data.ts finds it); without it these tests fail.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ClipTokenizer } from '../../runtime/text/clip-tokenizer.js';
import { cleanText, type TextCleanup } from '../../runtime/text/text-cleanup.js';
import {
  parsePromptWeights,
  tokenizeWithWeights,
  type ChunkToken,
  type EmbeddingLookup,
} from '../../runtime/text/prompt-weights.js';
import { shared } from '../shared-data.js';

const dataDir = shared('clip-tokenizer');

type Expected = number | { embedding: string; row: number };

interface TokenizeCase {
  id: string;
  text: string;
  normalized: { hf: string; hf_noftfy: string };
  hf_ids: number[];
  hf_noftfy_ids: number[];
  comfy_chunks: number[][];
  comfy_noftfy_chunks: number[][];
}

interface WeightCase {
  id: string;
  text: string;
  segments: [string, number][];
  chunks: [Expected, number][][];
  chunks_noftfy?: [Expected, number][][];
  chunks_no_embedding_dir?: [Expected, number][][];
  noftfy_identical: boolean;
  warnings: string[];
}

function load<T>(file: string): { cases: T[] } {
  return JSON.parse(readFileSync(path.join(dataDir, file), 'utf8')) as { cases: T[] };
}

function plain(chunks: ChunkToken[][]): [Expected, number][][] {
  return chunks.map((w) => w.map((t) => ['id' in t ? t.id : { embedding: t.embedding, row: t.row }, t.weight]));
}

// The test embeddings folder holds testemb.pt (2 vectors); ComfyUI tries the name as written, then
// with .safetensors/.pt/.bin appended.
const embeddingFolder: EmbeddingLookup = (name) =>
  ['', '.safetensors', '.pt', '.bin'].some((ext) => name + ext === 'testemb.pt') ? { name: 'testemb', rows: 2 } : undefined;

describe('CLIP tokenizer conformance (ComfyUI reference data)', () => {
  const modes: { mode: TextCleanup; tok: ClipTokenizer }[] = (['ftfy', 'basic'] as const).map((mode) => ({
    mode,
    tok: ClipTokenizer.fromFolder(dataDir, { cleanup: mode }),
  }));
  const tokenizeCases = load<TokenizeCase>('tokenize.json').cases;
  const weightCases = load<WeightCase>('weights.json').cases;

  it('has the expected amount of data', () => {
    expect(tokenizeCases.length + weightCases.length).toBe(140);
    expect(modes[0].tok.startId).toBe(49406);
    expect(modes[0].tok.endId).toBe(49407);
    expect(modes[0].tok.padId).toBe(49407);
    expect(modes[0].tok.vocabSize).toBe(49408);
  });

  for (const { mode, tok } of modes) {
    describe(`cleanup=${mode}`, () => {
      it.each(tokenizeCases.map((c) => [c.id, c] as const))('ids: %s', (_id, c) => {
        const ids = mode === 'ftfy' ? c.hf_ids : c.hf_noftfy_ids;
        expect(tok.encode(c.text)).toEqual(ids);
        if (!/<\|(startof|endof)text\|>/.test(c.text)) {
          expect(cleanText(c.text, mode)).toBe(mode === 'ftfy' ? c.normalized.hf : c.normalized.hf_noftfy);
        }
      });

      it.each(tokenizeCases.map((c) => [c.id, c] as const))('ComfyUI chunks: %s', (_id, c) => {
        const expected = mode === 'ftfy' ? c.comfy_chunks : c.comfy_noftfy_chunks;
        const chunks = tokenizeWithWeights(tok, c.text);
        expect(chunks.map((w) => w.map((t) => ('id' in t ? t.id : -1)))).toEqual(expected);
      });

      it.each(weightCases.map((c) => [c.id, c] as const))('weights: %s', (_id, c) => {
        const expected = mode === 'ftfy' || c.noftfy_identical ? c.chunks : c.chunks_noftfy!;
        const warnings: string[] = [];
        const chunks = tokenizeWithWeights(tok, c.text, { embeddings: embeddingFolder, onWarning: (m) => warnings.push(m) });
        expect(plain(chunks)).toEqual(expected);
        expect(warnings).toEqual(c.warnings);
        for (const w of chunks) expect(w).toHaveLength(77);
        if (c.chunks_no_embedding_dir && mode === 'ftfy') {
          expect(plain(tokenizeWithWeights(tok, c.text))).toEqual(c.chunks_no_embedding_dir);
        }
      });
    });
  }

  it.each(weightCases.map((c) => [c.id, c] as const))('segments: %s', (_id, c) => {
    expect(parsePromptWeights(c.text).map((s) => [s.text, s.weight])).toEqual(c.segments);
  });
});
