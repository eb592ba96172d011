import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ClipTokenizer } from '../../runtime/text/clip-tokenizer.js';
import { EmbeddingLibrary, readEmbeddingFile } from '../../runtime/text/embeddings.js';
import { tokenizeWithWeights, type ChunkToken } from '../../runtime/text/prompt-weights.js';
import { placeVectors, windowsWithVectors, VECTOR_SLOT_ID } from '../../runtime/models/text-common/inserted-vectors.js';
import { tokenizeSdxl } from '../../runtime/models/sdxl/conditioning.js';
import { SafetensorsFile } from '../../runtime/safetensors/reader.js';
import { writeSafetensors } from '../../runtime/safetensors/writer.js';
import { shared } from '../shared-data.js';

const EMB = shared('conformance-sdxl-next', 'models', 'embeddings');
const tok = ClipTokenizer.fromFolder(shared('clip-tokenizer'));

/** The slots of the first window as `id` / `file[row]` strings with weights other than 1 appended. */
function slots(chunks: ChunkToken[][]): string[] {
  return chunks[0]!
    .filter((t) => !('id' in t) || (t.id !== tok.endId && t.id !== 0) || t === chunks[0]![0])
    .map((t) => {
      const s = 'id' in t ? String(t.id) : `${path.basename(t.embedding)}[${t.row}]`;
      return t.weight === 1 ? s : `${s}:${Math.round(t.weight * 1e6) / 1e6}`;
    });
}

function parse(text: string) {
  const warnings: string[] = [];
  const lib = new EmbeddingLibrary([EMB], (m) => warnings.push(m));
  const chunks = tokenizeWithWeights(tok, text, { embeddings: lib.forEncoder('clip_l').lookup, onWarning: (m) => warnings.push(m) });
  return { chunks, warnings, lib };
}

const ids = (text: string) => tok.encode(text).map(String);

describe('embedding files', () => {
  it('reads A1111 safetensors (emb_params), the .pt string_to_param form and SDXL clip_l/clip_g files as float32 rows', () => {
    const one = readEmbeddingFile(path.join(EMB, 'tiny15-one.safetensors'), 'clip_l');
    expect([one.rows, one.width]).toEqual([1, 32]);
    expect(Array.from(one.data)).toEqual(Array.from(SafetensorsFile.open(path.join(EMB, 'tiny15-one.safetensors')).readFloat32('emb_params')));
    const pt = readEmbeddingFile(path.join(EMB, 'tiny15-s2p.pt'), 'clip_l');
    expect([pt.rows, pt.width]).toEqual([2, 32]);
    expect(pt.data.every(Number.isFinite)).toBe(true);

    const xl = SafetensorsFile.open(path.join(EMB, 'tinyxl.safetensors'));
    const l = readEmbeddingFile(path.join(EMB, 'tinyxl.safetensors'), 'clip_l');
    const g = readEmbeddingFile(path.join(EMB, 'tinyxl.safetensors'), 'clip_g');
    expect(Array.from(l.data)).toEqual(Array.from(xl.readFloat32('clip_l')));
    expect(Array.from(g.data)).toEqual(Array.from(xl.readFloat32('clip_g')));
    expect(Array.from(l.data)).not.toEqual(Array.from(g.data));
    // An SD1.5 file has no clip_g: bigG takes its first tensor, as ComfyUI does.
    const multiG = readEmbeddingFile(path.join(EMB, 'tiny15-multi.safetensors'), 'clip_g');
    expect([multiG.rows, multiG.width]).toEqual([3, 32]);
  });

  it('without the encoder key the first tensor in key order counts; a 1-D tensor is one vector', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'resflow-emb-'));
    const f = path.join(dir, 'two.safetensors');
    writeSafetensors(f, {
      zeta: { dtype: 'F32', shape: [2, 4], data: new Float32Array([9, 9, 9, 9, 9, 9, 9, 9]) },
      alpha: { dtype: 'F32', shape: [4], data: new Float32Array([1, 2, 3, 4]) },
    });
    const v = readEmbeddingFile(f, 'clip_l');
    expect([v.rows, v.width, Array.from(v.data)]).toEqual([1, 4, [1, 2, 3, 4]]);
  });

  it('a file that fails to load is a warning naming it and counts as missing', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'resflow-emb-'));
    writeFileSync(path.join(dir, 'broken.pt'), 'not a torch archive');
    const warnings: string[] = [];
    const lib = new EmbeddingLibrary([dir], (m) => warnings.push(m));
    expect(lib.forEncoder('clip_l').lookup('broken')).toBeUndefined();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('broken');
  });
});

describe('embedding:name in prompts', () => {
  it('puts one slot per vector, in order, where the word was', () => {
    const { chunks, warnings } = parse('a photo of embedding:tiny15-one cat');
    expect(warnings).toEqual([]);
    expect(slots(chunks)).toEqual([String(tok.startId), ...ids('a photo of'), 'tiny15-one.safetensors[0]', ...ids('cat')]);
    const multi = parse('embedding:tiny15-s2p dog').chunks;
    expect(slots(multi)).toEqual([String(tok.startId), 'tiny15-s2p.pt[0]', 'tiny15-s2p.pt[1]', ...ids('dog')]);
  });

  it('resolves the name as written, then with .safetensors, .pt, .bin', () => {
    const explicit = parse('embedding:tiny15-one.safetensors dog').chunks;
    expect(slots(explicit)).toEqual([String(tok.startId), 'tiny15-one.safetensors[0]', ...ids('dog')]);
    const dir = mkdtempSync(path.join(tmpdir(), 'resflow-emb-'));
    copyFileSync(path.join(EMB, 'tiny15-s2p.pt'), path.join(dir, 'only.bin'));
    const lib = new EmbeddingLibrary([dir]);
    expect(lib.forEncoder('clip_l').lookup('only')).toEqual({ name: `clip_l:${path.join(dir, 'only.bin')}`, rows: 2 });
    // Names never leave the embeddings folder.
    mkdirSync(path.join(dir, 'sub'));
    expect(new EmbeddingLibrary([path.join(dir, 'sub')]).forEncoder('clip_l').lookup('../only')).toBeUndefined();
  });

  it("carries the segment's weight: (embedding:x:1.2) on every vector, nesting multiplies by 1.1", () => {
    expect(slots(parse('(embedding:tiny15-multi:1.2) castle').chunks)).toEqual([
      String(tok.startId),
      'tiny15-multi.safetensors[0]:1.2',
      'tiny15-multi.safetensors[1]:1.2',
      'tiny15-multi.safetensors[2]:1.2',
      ...ids('castle'),
    ]);
    expect(slots(parse('(a (embedding:tiny15-one) cat:1.3)').chunks)).toEqual([String(tok.startId), `${ids('a')[0]}:1.3`, 'tiny15-one.safetensors[0]:1.43', `${ids('cat')[0]}:1.3`]);
  });

  it('a missing embedding is dropped with a warning naming it; trailing commas are kept as text', () => {
    const { chunks, warnings } = parse('a embedding:doesnotexist dog');
    expect(warnings).toEqual(['warning, embedding:doesnotexist dog does not exist, ignoring']);
    expect(slots(chunks)).toEqual([String(tok.startId), ...ids('a'), ...ids('dog')]);
    const comma = parse('embedding:tiny15-multi, in a garden');
    expect(comma.warnings).toEqual([]);
    expect(slots(comma.chunks).slice(0, 5)).toEqual([String(tok.startId), 'tiny15-multi.safetensors[0]', 'tiny15-multi.safetensors[1]', 'tiny15-multi.safetensors[2]', ...ids(',')]);
  });

  it('SDXL: each encoder takes its own tensor and warns on its own about a missing file', () => {
    const warnings: string[] = [];
    const lib = new EmbeddingLibrary([EMB], (m) => warnings.push(m));
    const sides = { l: lib.forEncoder('clip_l'), g: lib.forEncoder('clip_g') };
    const t = tokenizeSdxl(tok, 'embedding:tinyxl cat embedding:nope', undefined, { sdxlEmbeddings: sides, onWarning: lib.warn });
    expect(warnings).toEqual(['warning, embedding:nope does not exist, ignoring', 'warning, embedding:nope does not exist, ignoring']);
    const xl = SafetensorsFile.open(path.join(EMB, 'tinyxl.safetensors'));
    expect(Array.from(t.l.vectors![0]![1]!)).toEqual(Array.from(xl.readFloat32('clip_l').subarray(0, 32)));
    expect(Array.from(t.g.vectors![0]![2]!)).toEqual(Array.from(xl.readFloat32('clip_g').subarray(32, 64)));
    expect(t.g.tokens[0]!.slice(0, 6)).toEqual([tok.startId, VECTOR_SLOT_ID, VECTOR_SLOT_ID, ...tok.encode('cat'), tok.endId, 0]);
  });
});

describe('placing vectors for an encoder', () => {
  it('inserts vectors of the right width and drops the others, shifting later tokens left and padding the end', () => {
    const v4 = new Float32Array([1, 2, 3, 4]);
    const v6 = new Float32Array(6).fill(7);
    const tokens = [[10, 0, 0, 11, 12, 99, 99]];
    const vectors = [[undefined, v6, v4, undefined, undefined, undefined, undefined]];
    const warnings: string[] = [];
    const p = placeVectors(tokens, vectors, 4, 99, (m) => warnings.push(m));
    expect(warnings).toEqual(['WARNING: shape mismatch when trying to apply embedding, embedding will be ignored 6 != 4']);
    expect(p.ids).toEqual([[10, VECTOR_SLOT_ID, 11, 12, 99, 99, 99]]);
    expect(Array.from(p.mask)).toEqual([0, 1, 0, 0, 0, 0, 0]);
    expect(Array.from(p.embeds.subarray(4, 8))).toEqual([1, 2, 3, 4]);
    expect(p.any).toBe(true);
  });

  it('windowsWithVectors leaves prompts without embeddings as plain ids and weights', () => {
    const w = windowsWithVectors(tokenizeWithWeights(tok, '(red:1.5) house'));
    expect(w.vectors).toBeUndefined();
    expect(w.tokens[0]!.slice(0, 4)).toEqual([tok.startId, ...tok.encode('red house'), tok.endId]);
    expect(w.weights[0]!.slice(0, 3)).toEqual([1, 1.5, 1]);
  });
});
