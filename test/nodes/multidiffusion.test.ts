import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { Executor } from '../../runtime/executor/executor.js';
import { validatePrompt } from '../../runtime/executor/validate.js';
import { unetUsage } from '../../runtime/models/unet/model.js';
import { DEMO_CHECKPOINT, DEMO_RESADAPTER } from '../../runtime/models/synthetic/demo.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import { demoRuntime, type TestRuntime } from './helpers.js';

/** txt2img on the demo model with `patches` (class type → widget inputs) chained between loader and sampler. */
function txt2img(patches: Array<[string, Record<string, unknown>]>, size = 256): ApiPrompt {
  const p: Record<string, { class_type: string; inputs: Record<string, unknown> }> = {
    '1': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: DEMO_CHECKPOINT } },
    '2': { class_type: 'CLIPTextEncode', inputs: { text: 'a red circle on a blue background', clip: ['1', 1] } },
    '3': { class_type: 'CLIPTextEncode', inputs: { text: '', clip: ['1', 1] } },
    '4': { class_type: 'EmptyLatentImage', inputs: { width: size, height: size, batch_size: 1 } },
    '5': { class_type: 'LoadResAdapter', inputs: { resadapter_name: DEMO_RESADAPTER } },
  };
  let model: [string, number] = ['1', 0];
  patches.forEach(([type, inputs], i) => {
    const id = String(10 + i);
    p[id] = { class_type: type, inputs: { ...inputs, model, ...(type.startsWith('ApplyResAdapter') ? { resadapter: ['5', 0] } : {}) } };
    model = [id, 0];
  });
  p['6'] = { class_type: 'KSampler', inputs: { model, seed: 3, steps: 2, cfg: 4, sampler_name: 'euler', scheduler: 'normal', positive: ['2', 0], negative: ['3', 0], latent_image: ['4', 0], denoise: 1 } };
  p['7'] = { class_type: 'VAEDecode', inputs: { samples: ['6', 0], vae: ['1', 2] } };
  p['8'] = { class_type: 'SaveImage', inputs: { images: ['7', 0], filename_prefix: 'md' } };
  return p as ApiPrompt;
}

describe('MultiDiffusion node (demo model, through the executor)', () => {
  let rt: TestRuntime;
  const executor = new Executor({ log: () => {} });
  beforeAll(async () => {
    rt = await demoRuntime('resflow-md-');
  });

  async function render(prompt: ApiPrompt): Promise<{ pixels: Uint8Array; calls: number; items: number }> {
    const v = await validatePrompt(prompt, rt.registry);
    if (!v.ok) throw new Error(`invalid: ${v.error.message} ${JSON.stringify(v.node_errors)}`);
    const before = { ...unetUsage };
    const r = await executor.run(v.graph);
    if (r.status !== 'success') throw new Error(`run failed: ${r.error?.exception_message}`);
    const img = (r.outputs['8']!.images as Array<{ filename: string; subfolder: string }>)[0]!;
    const pixels = await sharp(readFileSync(join(rt.env.outputDir, img.subfolder, img.filename))).raw().toBuffer();
    return { pixels: new Uint8Array(pixels), calls: unetUsage.calls - before.calls, items: unetUsage.items - before.items };
  }
  const maxDiff = (a: Uint8Array, b: Uint8Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

  it('a window as large as the image changes nothing: same pixels, one UNet pass per step and side', async () => {
    const base = await render(txt2img([]));
    expect(base.items).toBe(2 * 2);
    const whole = await render(txt2img([['MultiDiffusion', { window_width: 256, window_height: 256, stride: 128, batch_size: 4 }]]));
    expect(whole.items).toBe(4);
    expect(maxDiff(whole.pixels, base.pixels)).toBe(0);
  });

  it('128² windows at stride 64 over 256²: 9 windows per step and side, batched 4 at a time, a different picture', async () => {
    const base = await render(txt2img([]));
    const tiled = await render(txt2img([['MultiDiffusion', { window_width: 128, window_height: 128, stride: 64, batch_size: 4 }]]));
    // 2 steps × (uncond + cond) × 9 windows; each step runs ceil(9 / 4) = 3 UNet calls.
    expect(tiled.items).toBe(2 * 2 * 9);
    expect(tiled.calls).toBe(2 * 3);
    expect(maxDiff(tiled.pixels, base.pixels)).toBeGreaterThan(0);
    // Batching is a schedule, not a different method: one window per call gives the same picture.
    const single = await render(txt2img([['MultiDiffusion', { window_width: 128, window_height: 128, stride: 64, batch_size: 1 }]]));
    expect(single.calls).toBe(2 * 9);
    expect(maxDiff(single.pixels, tiled.pixels)).toBeLessThanOrEqual(2);
  });

  it('leaves its input model untouched (a branch without the patch, in the same graph, renders as before)', async () => {
    const base = await render(txt2img([]));
    const p = txt2img([['MultiDiffusion', { window_width: 128, window_height: 128, stride: 64, batch_size: 4 }]]) as Record<string, { class_type: string; inputs: Record<string, unknown> }>;
    p['16'] = { class_type: 'KSampler', inputs: { ...p['6']!.inputs, model: ['1', 0] } };
    p['17'] = { class_type: 'VAEDecode', inputs: { samples: ['16', 0], vae: ['1', 2] } };
    p['18'] = { class_type: 'SaveImage', inputs: { images: ['17', 0], filename_prefix: 'md-base' } };
    const v = await validatePrompt(p, rt.registry);
    if (!v.ok) throw new Error(v.error.message);
    const r = await new Executor({ log: () => {} }).run(v.graph);
    expect(r.status).toBe('success');
    expect(r.executed).toEqual(expect.arrayContaining(['6', '10', '16']));
    const img = (r.outputs['18']!.images as Array<{ filename: string; subfolder: string }>)[0]!;
    const plain = new Uint8Array(await sharp(readFileSync(join(rt.env.outputDir, img.subfolder, img.filename))).raw().toBuffer());
    expect(maxDiff(plain, base.pixels)).toBe(0);
  });

  it('refuses a stride larger than the window, naming it', async () => {
    const v = await validatePrompt(txt2img([['MultiDiffusion', { window_width: 64, window_height: 64, stride: 128, batch_size: 1 }]]), rt.registry);
    if (!v.ok) throw new Error('should validate');
    const r = await executor.run(v.graph);
    expect(r.status).toBe('error');
    expect(r.error?.exception_message).toMatch(/stride 128 is larger than the window 64×64/);
  });
});

describe('ApplyResAdapterPart (the paper\'s ablations)', () => {
  let rt: TestRuntime;
  const executor = new Executor({ log: () => {} });
  beforeAll(async () => {
    rt = await demoRuntime('resflow-parts-');
  });
  async function pixels(prompt: ApiPrompt): Promise<Uint8Array> {
    const v = await validatePrompt(prompt, rt.registry);
    if (!v.ok) throw new Error(`invalid: ${v.error.message} ${JSON.stringify(v.node_errors)}`);
    const r = await executor.run(v.graph);
    if (r.status !== 'success') throw new Error(`run failed: ${r.error?.exception_message}`);
    const img = (r.outputs['8']!.images as Array<{ filename: string; subfolder: string }>)[0]!;
    return new Uint8Array(await sharp(readFileSync(join(rt.env.outputDir, img.subfolder, img.filename))).raw().toBuffer());
  }
  const same = (a: Uint8Array, b: Uint8Array) => a.every((v, i) => v === b[i]);

  it('lora only = ApplyResAdapter at norm_strength 0; norms only differs from the base and from the LoRA; "lora and norms" = ApplyResAdapter', async () => {
    const part = (p: string) => txt2img([['ApplyResAdapterPart', { part: p, alpha: 1, norm_strength: 1 }]], 128);
    const full = (inputs: Record<string, unknown>) => txt2img([['ApplyResAdapter', { alpha: 1, norm_strength: 1, ...inputs }]], 128);
    const base = await pixels(txt2img([], 128));
    const both = await pixels(full({}));
    const loraByBlend = await pixels(full({ norm_strength: 0 }));
    const lora = await pixels(part('lora only'));
    const norms = await pixels(part('norms only'));
    expect(same(await pixels(part('lora and norms')), both)).toBe(true);
    expect(same(lora, loraByBlend)).toBe(true);
    for (const [a, b] of [[base, both], [base, lora], [base, norms], [lora, norms], [both, norms], [both, lora]] as const) expect(same(a, b)).toBe(false);
  });
});
