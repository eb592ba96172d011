import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runConformance, formatCaseReport } from '../../runtime/conformance/runner.js';
import { UnsupportedModelError } from '../../runtime/models/checkpoint.js';
import { ModelKeyError } from '../../runtime/models/weights.js';
import { equalizeWindows, loadSdxlModel, openSdxlCheckpoint, SDXL_HEAD_CHANNELS_METADATA, SDXL_PREFIXES } from '../../runtime/models/sdxl/index.js';
import { headsFor, inferUnetConfig } from '../../runtime/models/unet/config.js';
import { WeightSet } from '../../runtime/models/weights.js';
import { sdxlKeyShapes } from '../../runtime/adapters/arch-tables.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import { writeSafetensors, type TensorToWrite } from '../../runtime/safetensors/writer.js';
import { shared } from '../adapters/helpers.js';

const SDXL_DIR = shared('conformance-sdxl');
const TINY = path.join(SDXL_DIR, 'models', 'tiny-sdxl-a.safetensors');
const SD15 = shared('conformance', 'models', 'tiny-sd15-a.safetensors');
const SDXL_INDEX = shared('conformance-sdxl', 'index.json');

const tmp = mkdtempSync(path.join(tmpdir(), 'resflow-sdxl-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A copy of `src` with some tensors dropped or replaced and extra metadata. */
function rewrite(src: string, name: string, edit: { drop?: string[]; replace?: Record<string, TensorToWrite>; metadata?: Record<string, string> }): string {
  const f = SafetensorsFile.open(src);
  const tensors: Record<string, TensorToWrite> = {};
  for (const k of f.keys()) {
    if (edit.drop?.includes(k)) continue;
    const info = f.info(k);
    tensors[k] = edit.replace?.[k] ?? { dtype: info.dtype, shape: info.shape, data: f.readBytes(k) };
  }
  const out = path.join(tmp, name);
  writeSafetensors(out, tensors, { ...f.metadata, ...edit.metadata });
  return out;
}

describe('SDXL conformance (ComfyUI vectors)', () => {
  it('the SDXL conformance set is present', () => expect(SDXL_INDEX.startsWith(SDXL_DIR)).toBe(true));
  const cases = ['unet', 'unet-odd', 'clip', 'lora-resadapter-sdxl', 'samplers', 'pipeline-txt2img'];
  for (const name of cases) {
    it(`${name} passes`, async () => {
      const rep = await runConformance(SDXL_DIR, { only: [name] });
      expect(rep.cases).toHaveLength(1);
      const r = rep.cases[0]!;
      expect(r.kind, formatCaseReport(r)).toMatch(/^sdxl-/);
      expect(r.pass, formatCaseReport(r)).toBe(true);
    }, 60_000);
  }
});

describe('openSdxlCheckpoint', () => {
  it('splits the single-file layout into its four parts', () => {
    const ck = openSdxlCheckpoint(TINY, { numHeadChannels: 16 });
    expect(ck.unet.prefix).toBe(SDXL_PREFIXES.unet);
    expect(ck.vae.prefix).toBe('first_stage_model.');
    expect(ck.clipL.prefix).toBe('conditioner.embedders.0.transformer.text_model.');
    expect(ck.clipG.prefix).toBe('conditioner.embedders.1.model.');
    expect(ck.vaeScaleFactor).toBe(0.13025);
    expect(ck.pooledDim).toBe(32);
    const u = ck.unetConfig;
    expect(u.modelChannels).toBe(32);
    expect(u.channelMult).toEqual([1, 2, 2]);
    expect(u.numResBlocks).toEqual([1, 1, 1]);
    expect(u.contextDim).toBe(64);
    expect(u.admInChannels).toBe(1568);
    expect(u.useLinearInTransformer).toBe(true);
    expect(u.middleTransformerDepth).toBe(2);
    expect(u.outputTransformerDepth).toEqual([2, 2, 1, 1, 0, 0]);
    expect(headsFor(u, 64)).toBe(4);
  });

  it('head width: 64 by default, else the option, else the file metadata', () => {
    expect(openSdxlCheckpoint(TINY).unetConfig.numHeadChannels).toBe(64);
    const tagged = rewrite(TINY, 'tagged.safetensors', { metadata: { [SDXL_HEAD_CHANNELS_METADATA]: '16' } });
    expect(openSdxlCheckpoint(tagged).unetConfig.numHeadChannels).toBe(16);
    expect(openSdxlCheckpoint(tagged, { numHeadChannels: 32 }).unetConfig.numHeadChannels).toBe(32);
    expect(() => openSdxlCheckpoint(TINY, { numHeadChannels: 48 })).toThrow(/attention width 64 is not a multiple of the head width 48/);
  });

  it('refuses other families, naming what the file is', () => {
    expect(() => openSdxlCheckpoint(SD15)).toThrow(UnsupportedModelError);
    expect(() => openSdxlCheckpoint(SD15)).toThrow(/Stable Diffusion 1\.x/);
  });

  it('names the missing part', () => {
    const noVae = rewrite(TINY, 'no-vae.safetensors', { drop: ['first_stage_model.decoder.conv_in.weight'] });
    expect(() => openSdxlCheckpoint(noVae)).toThrow(/no VAE \(missing key "first_stage_model\.decoder\.conv_in\.weight"\)/);
  });

  it('checks the label embedding against pooled + 6 size embeddings', () => {
    const key = 'model.diffusion_model.label_emb.0.0.weight';
    const bad = rewrite(TINY, 'bad-adm.safetensors', { replace: { [key]: { dtype: 'F32', shape: [128, 1000], data: new Float32Array(128 * 1000) } } });
    expect(() => openSdxlCheckpoint(bad, { numHeadChannels: 16 })).toThrow(ModelKeyError);
    expect(() => openSdxlCheckpoint(bad, { numHeadChannels: 16 })).toThrow(/takes 1000 inputs, SDXL's y has 1568.*label_emb\.0\.0\.weight/);
  });

  it('loadSdxlModel wires every part, with the tiny towers described explicitly', async () => {
    const m = await loadSdxlModel(TINY, { numHeadChannels: 16, clipL: { numHeads: 2 }, clipG: { numHeads: 2 } });
    expect(m.text.contextDim).toBe(64);
    expect(m.text.pooledDim).toBe(32);
    expect(m.vae.scaleFactor).toBe(0.13025);
    expect(m.modelSampling.latentFormat.scaleFactor).toBe(0.13025);
    expect(m.unet.config.admInChannels).toBe(1568);
    // Without the head counts the 32-wide towers cannot be loaded: shapes cannot tell them.
    await expect(loadSdxlModel(TINY)).rejects.toThrow(/cannot infer the head count/);
  });
});

describe('full-size SDXL', () => {
  it('the SDXL base key table infers the SDXL base UNet, 64-wide heads, y of 1280 + 6 x 256', () => {
    const t = sdxlKeyShapes();
    // Header-only stand-in for the 5 GB file: inference reads nothing but names and shapes.
    const file = { path: 'sdxl-base-key-table', metadata: {}, keys: () => [...t.keys()], has: (k: string) => t.has(k), info: (k: string) => ({ shape: t.get(k)!, dtype: 'F16' }) };
    const ws = Object.assign(Object.create(WeightSet.prototype), { file, prefix: SDXL_PREFIXES.unet }) as WeightSet;
    const u = inferUnetConfig(ws, { numHeadChannels: 64 });
    expect(u).toMatchObject({ modelChannels: 320, channelMult: [1, 2, 4], numResBlocks: [2, 2, 2], middleTransformerDepth: 10, contextDim: 2048, admInChannels: 1280 + 6 * 256, useLinearInTransformer: true });
    expect(u.inputTransformerDepth).toEqual([0, 0, 0, 0, 2, 2, 0, 10, 10]);
    expect(u.outputTransformerDepth).toEqual([10, 10, 10, 2, 2, 2, 0, 0, 0]);
    expect([headsFor(u, 640), headsFor(u, 1280)]).toEqual([10, 20]);
  });
});

describe('SDXL text encoding', () => {
  it('long prompts: 77-token windows side by side, pooled from the first bigG window', async () => {
    const m = await loadSdxlModel(TINY, { numHeadChannels: 16, clipL: { numHeads: 2 }, clipG: { numHeads: 2 } });
    const win = (ids: number[], pad: number) => [49406, ...ids, 49407, ...new Array(75 - ids.length).fill(pad)];
    const l1 = win([320, 1125], 49407);
    const l2 = win([539], 49407);
    const g1 = win([320, 1125], 0);
    const one = await m.text.encodeTokens({ l: { tokens: [l1] }, g: { tokens: [g1] } });
    const uneven = { l: { tokens: [l1, l2] }, g: { tokens: [g1] } };
    // As SDXLClipModel: unequal sides are cut to the shorter; the nodes pad with empty windows first.
    expect((await m.text.encodeTokens(uneven)).contextShape).toEqual([1, 77, 64]);
    const two = await m.text.encodeTokens(equalizeWindows(uneven, m.text.clipL.emptyWindow(), m.text.clipG.emptyWindow()));
    expect(one.contextShape).toEqual([1, 77, 64]);
    expect(two.contextShape).toEqual([1, 154, 64]);
    const close = (a: Float32Array, b: Float32Array) => a.every((v, i) => Math.abs(v - b[i]!) < 1e-5);
    expect(close(two.context.subarray(0, 77 * 64), one.context)).toBe(true);
    expect(close(two.pooled, one.pooled)).toBe(true);
    // bigG's second window is its empty prompt: the G half of the second block equals an empty encode.
    const empty = await m.text.encodeTokens(m.text.emptyTokens());
    const gHalf = (ctx: Float32Array, t: number) => ctx.subarray(t * 64 + 32, t * 64 + 64);
    for (const t of [0, 40, 76]) expect(close(gHalf(two.context, 77 + t), gHalf(empty.context, t))).toBe(true);
  });

  it('a clip skip past CLIP-L\'s depth takes its final-LN\'d last layer, as ComfyUI falls back to "last"', async () => {
    const m = await loadSdxlModel(TINY, { numHeadChannels: 16, clipL: { numHeads: 2 }, clipG: { numHeads: 2 } });
    const inputs = SafetensorsFile.open(path.join(SDXL_DIR, 'clip', 'inputs.safetensors'));
    const expected = SafetensorsFile.open(path.join(SDXL_DIR, 'clip', 'expected.safetensors'));
    const toks = (n: string) => Array.from(inputs.readFloat32(n), Number);
    // CLIP-L has 3 layers, bigG 4: skip 4 is past L (-> last + LN) but bigG's first block, raw.
    const r = await m.text.encodeTokens({ l: { tokens: [toks('short/tokens_l')] }, g: { tokens: [toks('short/tokens_g')] } }, { clipSkip: 4 });
    const near = (a: Float32Array, b: Float32Array) => Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
    expect(near(r.l.cond, expected.readFloat32('short/l/last_hidden_state'))).toBeLessThan(1e-4);
    expect(near(r.g.cond, expected.readFloat32('short/g/hidden_states.1'))).toBeLessThan(1e-4);
  });
});
