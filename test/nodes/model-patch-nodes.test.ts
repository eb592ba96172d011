import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { Executor } from '../../runtime/executor/executor.js';
import { validatePrompt } from '../../runtime/executor/validate.js';
import { DEMO_CHECKPOINT } from '../../runtime/models/synthetic/demo.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import type { LatentValue } from '../../nodes/core/types.js';
import { demoRuntime, type TestRuntime, execNode } from './helpers.js';

type Node = ApiPrompt[string];
const n = (class_type: string, inputs: Record<string, unknown>): Node => ({ class_type, inputs }) as Node;

async function execute(rt: TestRuntime, prompt: ApiPrompt) {
  const v = await validatePrompt(prompt, rt.registry);
  if (!v.ok) throw new Error(`invalid: ${JSON.stringify(v.node_errors)} ${v.error.message}`);
  return new Executor().run(v.graph);
}

/** Decoded pixels of each SaveImage node, by node id. */
async function savedPixels(rt: TestRuntime, outputs: Record<string, Record<string, unknown[]>>): Promise<Record<string, Buffer>> {
  const out: Record<string, Buffer> = {};
  for (const [id, ui] of Object.entries(outputs)) {
    const img = (ui.images as Array<{ filename: string; subfolder: string }>)[0]!;
    out[id] = await sharp(readFileSync(join(rt.env.outputDir, img.subfolder, img.filename))).raw().toBuffer();
  }
  return out;
}

const maxDiff = (a: Buffer, b: Buffer) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

/**
 * FreeU, FreeU_V2, PatchModelAddDownscale and HyperTile as API-prompt nodes on the demo checkpoint: each
 * patch branches off one loaded MODEL, changes its own render, and leaves the plain branch untouched.
 */
describe('model patch nodes through the executor', () => {
  let rt: TestRuntime;
  beforeAll(async () => {
    rt = await demoRuntime('resflow-model-patches-');
  });

  const sampler = (model: [string, number], seed = 7): Node =>
    n('KSampler', { model, seed, steps: 3, cfg: 6, sampler_name: 'euler', scheduler: 'normal', positive: ['2', 0], negative: ['3', 0], latent_image: ['4', 0], denoise: 1 });
  const base: ApiPrompt = {
    '1': n('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT }),
    '2': n('CLIPTextEncode', { text: 'a red house by a lake', clip: ['1', 1] }),
    '3': n('CLIPTextEncode', { text: 'blurry', clip: ['1', 1] }),
    '4': n('EmptyLatentImage', { width: 128, height: 96, batch_size: 1 }),
  };
  const save = (id: string, samples: string): ApiPrompt => ({
    [`${id}d`]: n('VAEDecode', { samples: [samples, 0], vae: ['1', 2] }),
    [`${id}s`]: n('SaveImage', { images: [`${id}d`, 0], filename_prefix: `patches/${id}` }),
  });

  it('every patch changes its own branch and none changes the plain one', async () => {
    const prompt: ApiPrompt = {
      ...base,
      '10': n('FreeU', { model: ['1', 0], b1: 1.1, b2: 1.2, s1: 0.9, s2: 0.2 }),
      '11': n('FreeU_V2', { model: ['1', 0], b1: 1.3, b2: 1.4, s1: 0.9, s2: 0.2 }),
      '12': n('PatchModelAddDownscale', {
        model: ['1', 0], block_number: 1, downscale_factor: 2, start_percent: 0, end_percent: 0.5, downscale_after_skip: true, downscale_method: 'bislerp', upscale_method: 'bicubic',
      }),
      '13': n('HyperTile', { model: ['1', 0], tile_size: 32, swap_size: 3, max_depth: 1, scale_depth: false }),
      '20': sampler(['1', 0]),
      '21': sampler(['10', 0]),
      '22': sampler(['11', 0]),
      '23': sampler(['12', 0]),
      '24': sampler(['13', 0]),
      ...save('p', '20'),
      ...save('f1', '21'),
      ...save('f2', '22'),
      ...save('ds', '23'),
      ...save('ht', '24'),
    };
    const r = await execute(rt, prompt);
    expect(r.status, r.error?.exception_message).toBe('success');
    const px = await savedPixels(rt, r.outputs as never);
    for (const id of ['f1s', 'f2s', 'dss', 'hts']) expect(maxDiff(px[id]!, px.ps!), id).toBeGreaterThan(0);

    // The plain render alone, in a prompt with no patch node at all, is bit-identical.
    const alone = await execute(rt, { ...base, '20': sampler(['1', 0]), ...save('p', '20') });
    expect(alone.status, alone.error?.exception_message).toBe('success');
    const pxAlone = await savedPixels(rt, alone.outputs as never);
    expect(maxDiff(pxAlone.ps!, px.ps!)).toBe(0);
  }, 240_000);

  it('each patch moves the sampled latent well beyond float noise, and the input MODEL keeps rendering plain', async () => {
    const exec = (name: string, inputs: Record<string, unknown>) => execNode(rt.registry, name, inputs);
    const [model, clip] = await exec('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT });
    const [pos] = await exec('CLIPTextEncode', { text: 'a red house by a lake', clip });
    const [neg] = await exec('CLIPTextEncode', { text: 'blurry', clip });
    const [latent] = await exec('EmptyLatentImage', { width: 128, height: 96, batch_size: 1 });
    const ks = async (m: unknown) => {
      const [l] = await exec('KSampler', { model: m, seed: 7, steps: 3, cfg: 6, sampler_name: 'euler', scheduler: 'normal', positive: pos, negative: neg, latent_image: latent, denoise: 1 });
      return (l as LatentValue).samples.data;
    };
    const plain = await ks(model);
    const scale = plain.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const patches: Array<[string, Record<string, unknown>]> = [
      ['FreeU', { b1: 1.1, b2: 1.2, s1: 0.9, s2: 0.2 }],
      ['FreeU_V2', { b1: 1.3, b2: 1.4, s1: 0.9, s2: 0.2 }],
      ['PatchModelAddDownscale', { block_number: 1, downscale_factor: 2, start_percent: 0, end_percent: 0.5, downscale_after_skip: false, downscale_method: 'area', upscale_method: 'nearest-exact' }],
      ['HyperTile', { tile_size: 32, swap_size: 3, max_depth: 1, scale_depth: false }],
    ];
    for (const [name, inputs] of patches) {
      const [m] = await exec(name, { model, ...inputs });
      expect(m).not.toBe(model);
      const got = await ks(m);
      const d = got.reduce((acc, v, i) => Math.max(acc, Math.abs(v - plain[i]!)), 0);
      expect(d / scale, name).toBeGreaterThan(1e-3);
    }
    // After all that patching the loaded MODEL still samples exactly as before.
    expect(Array.from(await ks(model))).toEqual(Array.from(plain));
  }, 240_000);

  it("HyperTile's tiles follow the seed: the same seed renders the same image", async () => {
    const run = async (seed: number) => {
      const r = await execute(rt, {
        ...base,
        '13': n('HyperTile', { model: ['1', 0], tile_size: 32, swap_size: 4, max_depth: 1, scale_depth: true }),
        '24': sampler(['13', 0], seed),
        ...save('ht', '24'),
      });
      expect(r.status, r.error?.exception_message).toBe('success');
      return (await savedPixels(rt, r.outputs as never)).hts!;
    };
    // Each run is a fresh executor (no cache): the draws restart from the seed every time.
    const a = await run(11);
    const b = await run(11);
    expect(maxDiff(a, b)).toBe(0);
  }, 240_000);

  it('bad widget values are refused with the node and input named', async () => {
    const bad = await execute(rt, {
      ...base,
      '12': n('PatchModelAddDownscale', { model: ['1', 0], block_number: 3, downscale_factor: 2, start_percent: 0, end_percent: 0.35, downscale_after_skip: true, downscale_method: 'lanczos', upscale_method: 'bicubic' }),
      '23': sampler(['12', 0]),
      ...save('ds', '23'),
    }).catch((e: Error) => e);
    expect(String(bad instanceof Error ? bad.message : JSON.stringify(bad))).toMatch(/downscale_method/);
  }, 60_000);
});
