import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelKeyError } from '../../runtime/models/weights.js';
import { OpenClipTextEncoder, inferOpenClipConfig } from '../../runtime/models/openclip/index.js';
import {
  SIZE_EMBED_DIM,
  defaultSizesForLatent,
  equalizeWindows,
  resolveSizes,
  sdxlAdm,
  sdxlAdmProvider,
  sizeEmbedding,
  tokenizeSdxl,
  type SdxlConditioning,
} from '../../runtime/models/sdxl/index.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import { writeSafetensors, type TensorToWrite } from '../../runtime/safetensors/writer.js';
import { ClipTokenizer } from '../../runtime/text/clip-tokenizer.js';
import { WeightSet } from '../../runtime/models/weights.js';
import { shared } from '../adapters/helpers.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'resflow-openclip-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const P = 'conditioner.embedders.1.model.';

/** A random OpenCLIP tower in SDXL's key layout (width W, L blocks, 8 positions, vocab 16). */
function tower(W = 8, L = 2): Record<string, TensorToWrite> {
  let seed = 1;
  const rnd = (n: number) => Float32Array.from({ length: n }, () => ((seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5) * 0.4);
  const t = (shape: number[]): TensorToWrite => ({ dtype: 'F32', shape, data: rnd(shape.reduce((a, b) => a * b, 1)) });
  const out: Record<string, TensorToWrite> = {
    [`${P}token_embedding.weight`]: t([16, W]),
    [`${P}positional_embedding`]: t([8, W]),
    [`${P}ln_final.weight`]: t([W]),
    [`${P}ln_final.bias`]: t([W]),
    [`${P}text_projection`]: t([W, 4]),
    [`${P}logit_scale`]: t([]),
  };
  for (let i = 0; i < L; i++) {
    const b = `${P}transformer.resblocks.${i}.`;
    Object.assign(out, {
      [`${b}ln_1.weight`]: t([W]),
      [`${b}ln_1.bias`]: t([W]),
      [`${b}attn.in_proj_weight`]: t([3 * W, W]),
      [`${b}attn.in_proj_bias`]: t([3 * W]),
      [`${b}attn.out_proj.weight`]: t([W, W]),
      [`${b}attn.out_proj.bias`]: t([W]),
      [`${b}ln_2.weight`]: t([W]),
      [`${b}ln_2.bias`]: t([W]),
      [`${b}mlp.c_fc.weight`]: t([4 * W, W]),
      [`${b}mlp.c_fc.bias`]: t([4 * W]),
      [`${b}mlp.c_proj.weight`]: t([W, 4 * W]),
      [`${b}mlp.c_proj.bias`]: t([W]),
    });
  }
  return out;
}

function file(name: string, tensors: Record<string, TensorToWrite>): string {
  const p = path.join(tmp, name);
  writeSafetensors(p, tensors);
  return p;
}

describe('OpenCLIP text tower', () => {
  it('reads the architecture off keys and shapes', () => {
    const ws = new WeightSet(SafetensorsFile.open(file('ok.safetensors', tower())), P);
    expect(inferOpenClipConfig(ws, { numHeads: 2 })).toMatchObject({ hiddenSize: 8, numLayers: 2, intermediateSize: 32, vocabSize: 16, maxPositions: 8, numHeads: 2, activation: 'gelu', projectionDim: 4 });
  });

  it('encodes, projects pooled at the first end token, and pads the empty prompt with 0', async () => {
    const enc = await OpenClipTextEncoder.load(file('enc.safetensors', tower()), { config: { numHeads: 2 }, specialTokens: { start: 14, end: 15 } });
    expect(enc.weights.prefix).toBe(P);
    expect(enc.emptyWindow()).toEqual([14, 15, 0, 0, 0, 0, 0, 0]);
    const r = await enc.encodeTokens([[14, 3, 4, 15, 0, 0, 0, 0]]);
    expect(r.condDims).toEqual([1, 8, 8]);
    expect(r.pooledDims).toEqual([1, 4]);
    const last = (await enc.run([[14, 3, 4, 15, 0, 0, 0, 0]], { clipSkip: 2 })).last_hidden_state!.data as Float32Array;
    expect(Array.from(r.pooledUnprojected)).toEqual(Array.from(last.subarray(3 * 8, 4 * 8)));
    expect(Array.from(r.pooled)).toEqual(Array.from(enc.project(r.pooledUnprojected)));
  });

  it('names the key when one is missing', async () => {
    const t = tower();
    delete t[`${P}transformer.resblocks.1.attn.in_proj_bias`];
    const p = file('missing.safetensors', t);
    await expect(OpenClipTextEncoder.load(p, { config: { numHeads: 2 } })).rejects.toThrow(ModelKeyError);
    await expect(OpenClipTextEncoder.load(p, { config: { numHeads: 2 } })).rejects.toThrow(`key "${P}transformer.resblocks.1.attn.in_proj_bias"`);
  });

  it('names the key when a shape is wrong', async () => {
    const t = tower();
    t[`${P}transformer.resblocks.0.attn.in_proj_weight`] = { dtype: 'F32', shape: [16, 8], data: new Float32Array(128) };
    await expect(OpenClipTextEncoder.load(file('shape.safetensors', t), { config: { numHeads: 2 } })).rejects.toThrow(
      new RegExp(`shape \\[16, 8\\] does not match the expected \\[24, 8\\].*${P.replace(/\./g, '\\.')}transformer\\.resblocks\\.0\\.attn\\.in_proj_weight`),
    );
  });

  it('names the key for a gap in the blocks and a transposed projection', () => {
    const gap = tower(8, 3);
    for (const k of Object.keys(gap)) if (k.includes('resblocks.1.')) delete gap[k];
    const ws = new WeightSet(SafetensorsFile.open(file('gap.safetensors', gap)), P);
    expect(() => inferOpenClipConfig(ws, { numHeads: 2 })).toThrow(`key "${P}transformer.resblocks.1.*"`);
    const tp = tower();
    tp[`${P}text_projection`] = { dtype: 'F32', shape: [4, 8], data: new Float32Array(32) };
    const ws2 = new WeightSet(SafetensorsFile.open(file('proj.safetensors', tp)), P);
    expect(() => inferOpenClipConfig(ws2, { numHeads: 2 })).toThrow(`key "${P}text_projection"`);
  });

  it('asks for the head count when the width is not a multiple of 64', () => {
    const ws = new WeightSet(SafetensorsFile.open(file('heads.safetensors', tower())), P);
    expect(() => inferOpenClipConfig(ws)).toThrow(/cannot infer the head count for width 8; pass numHeads/);
  });
});

describe('SDXL y vector', () => {
  const sizes = { width: 832, height: 1216, cropW: 64, cropH: 32, targetWidth: 1024, targetHeight: 768 };

  it('is [pooled | E(h) | E(w) | E(crop_h) | E(crop_w) | E(target_h) | E(target_w)], per pooled row', () => {
    const pooled = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const y = sdxlAdm(pooled, 3, sizes, 3 + 6 * 256);
    expect(y).toHaveLength(2 * (3 + 1536));
    const row = (r: number) => y.subarray(r * 1539, (r + 1) * 1539);
    expect(Array.from(row(0).subarray(0, 3))).toEqual([1, 2, 3]);
    expect(Array.from(row(1).subarray(0, 3))).toEqual([4, 5, 6]);
    [1216, 832, 32, 64, 768, 1024].forEach((v, i) => {
      expect(Array.from(row(0).subarray(3 + i * 256, 3 + (i + 1) * 256))).toEqual(Array.from(sizeEmbedding(v)));
    });
    expect(Array.from(row(1).subarray(3))).toEqual(Array.from(row(0).subarray(3)));
    expect(() => sdxlAdm(pooled, 3, sizes, 2816)).toThrow(/the UNet takes 2816/);
  });

  it('embeds a value as cosines then sines, in float32', () => {
    const e = sizeEmbedding(1024);
    expect(e).toHaveLength(SIZE_EMBED_DIM);
    expect(e[0]).toBeCloseTo(Math.cos(1024), 6);
    expect(e[128]).toBeCloseTo(Math.sin(1024), 6);
    // freqs[127] = exp(-ln(1e4) * 127/128): the argument is rounded to float32 before the cosine.
    const f127 = Math.fround(Math.exp(Math.fround(Math.fround(Math.fround(-Math.log(10000)) * 127) / 128)));
    expect(e[127]).toBe(Math.fround(Math.cos(Math.fround(1024 * f127))));
    expect(Array.from(sizeEmbedding(0))).toEqual([...new Array(128).fill(1), ...new Array(128).fill(0)]);
  });

  it('defaults from the latent size with ComfyUI\'s fixed factor 8', () => {
    expect(defaultSizesForLatent([1, 4, 8, 12])).toEqual({ width: 96, height: 64, cropW: 0, cropH: 0, targetWidth: 96, targetHeight: 64 });
    expect(resolveSizes(undefined, [2, 4, 128, 96])).toEqual({ width: 768, height: 1024, cropW: 0, cropH: 0, targetWidth: 768, targetHeight: 1024 });
    expect(resolveSizes({ width: 1024, height: 768, cropW: 8 })).toEqual({ width: 1024, height: 768, cropW: 8, cropH: 0, targetWidth: 1024, targetHeight: 768 });
    expect(resolveSizes({ width: 640 }, [1, 4, 8, 12])).toMatchObject({ width: 640, height: 64, targetWidth: 640 });
    expect(() => resolveSizes({})).toThrow(/no latent shape/);
  });

  it('gives each [uncond, cond] chunk its own y, repeated to the chunk batch', () => {
    const ctx = (n: number): SdxlConditioning => ({ context: new Float32Array(2 * 3), contextShape: [1, 2, 3], pooled: Float32Array.from([n, n]), pooledShape: [1, 2] });
    const pos = { ...ctx(7), sizes: { width: 1024, height: 1024 } };
    const neg = ctx(-7);
    const adm = 2 + 1536;
    const provide = sdxlAdmProvider(pos, neg, [2, 4, 8, 12], adm);
    const y = provide({ context: new Float32Array(4 * 6), contextShape: [4, 2, 3], controls: [], condOrUncond: ['uncond', 'cond'] });
    expect(y.dims).toEqual([4, adm]);
    const d = y.data as Float32Array;
    expect([0, 1, 2, 3].map((r) => d[r * adm])).toEqual([-7, -7, 7, 7]);
    expect(Array.from(d.subarray(2, 2 + 256))).toEqual(Array.from(sizeEmbedding(64)));
    expect(Array.from(d.subarray(2 * adm + 2, 2 * adm + 2 + 256))).toEqual(Array.from(sizeEmbedding(1024)));
    const condOnly = provide({ context: new Float32Array(2 * 6), contextShape: [2, 2, 3], controls: [], condOrUncond: ['cond'] });
    expect(Array.from((condOnly.data as Float32Array).subarray(0, adm))).toEqual(Array.from(d.subarray(2 * adm, 3 * adm)));
  });
});

describe('SDXL tokens', () => {
  it('pads the shorter side with empty windows (CLIPTextEncodeSDXL)', () => {
    const eq = equalizeWindows({ l: { tokens: [[1, 2, 3]], weights: [[1, 1.2, 1]] }, g: { tokens: [[1, 2, 0], [1, 2, 0]] } }, [1, 2, 2], [1, 2, 0]);
    expect(eq.l.tokens).toEqual([[1, 2, 3], [1, 2, 2]]);
    expect(eq.l.weights).toEqual([[1, 1.2, 1], [1, 1, 1]]);
    expect(eq.g.tokens).toHaveLength(2);
  });

  const vocab = shared('clip-tokenizer');
  it('tokenizes for both encoders: CLIP-L pads with the end token, bigG with 0', () => {
    const tok = ClipTokenizer.fromFolder(vocab);
    const t = tokenizeSdxl(tok, 'a (red:1.2) cat');
    expect(t.l.tokens).toHaveLength(1);
    const l = t.l.tokens[0]!;
    const g = t.g.tokens[0]!;
    expect(l).toHaveLength(77);
    const end = l.indexOf(49407);
    expect(l[0]).toBe(49406);
    expect(g.slice(0, end + 1)).toEqual(l.slice(0, end + 1));
    expect(l.slice(end + 1).every((x) => x === 49407)).toBe(true);
    expect(g.slice(end + 1).every((x) => x === 0)).toBe(true);
    expect(t.l.weights![0]!.some((w) => Math.abs(w - 1.2) < 1e-9)).toBe(true);
    const long = tokenizeSdxl(tok, 'cat', Array.from({ length: 100 }, () => 'dog').join(' '));
    expect(long.l.tokens).toHaveLength(2);
    expect(long.g.tokens).toHaveLength(2);
    expect(long.g.tokens[1]).toEqual([49406, 49407, ...new Array(75).fill(0)]);
  });
});
