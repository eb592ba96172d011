import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { Executor } from '../../runtime/executor/executor.js';
import { validatePrompt } from '../../runtime/executor/validate.js';
import type { ImageBatch } from '../../runtime/image/image.js';
import { DEMO_INPUT_IMAGE } from '../../runtime/models/synthetic/demo.js';
import { UpscaleModel } from '../../runtime/models/upscale/rrdb.js';
import { upscaleImage } from '../../runtime/models/upscale/tiled-upscale.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import { shared } from '../adapters/helpers.js';
import { demoRuntime, type TestRuntime, execNode } from './helpers.js';
import { safetensorsToTorchZip } from './torch-zip-helpers.js';

type Node = ApiPrompt[string];
const n = (class_type: string, inputs: Record<string, unknown>): Node => ({ class_type, inputs }) as Node;
const MODELS = shared('conformance-nodes/models');

/** UpscaleModelLoader + ImageUpscaleWithModel on the conformance RRDBNet files (both key layouts). */
describe('upscale model nodes through the executor', () => {
  let rt: TestRuntime;
  const exec = (name: string, inputs: Record<string, unknown>) => execNode(rt.registry, name, inputs);

  beforeAll(async () => {
    rt = await demoRuntime('resflow-upscale-');
    const dir = join(rt.env.folders.modelsDir, 'upscale_models');
    mkdirSync(dir, { recursive: true });
    for (const f of ['esrgan-old-x4.safetensors', 'realesrgan-x2-unshuffle.safetensors']) copyFileSync(join(MODELS, f), join(dir, f));
  });

  it('lists the models and saves an image upscaled by each model factor', async () => {
    expect(rt.env.folders.list('upscale_models')).toEqual(['esrgan-old-x4.safetensors', 'realesrgan-x2-unshuffle.safetensors']);
    const prompt: ApiPrompt = {
      '1': n('LoadImage', { image: DEMO_INPUT_IMAGE }),
      '2': n('ImageScale', { image: ['1', 0], upscale_method: 'bilinear', width: 40, height: 24, crop: 'disabled' }),
      '3': n('UpscaleModelLoader', { model_name: 'esrgan-old-x4.safetensors' }),
      '4': n('UpscaleModelLoader', { model_name: 'realesrgan-x2-unshuffle.safetensors' }),
      '5': n('ImageUpscaleWithModel', { upscale_model: ['3', 0], image: ['2', 0] }),
      '6': n('ImageUpscaleWithModel', { upscale_model: ['4', 0], image: ['2', 0] }),
      '7': n('SaveImage', { images: ['5', 0], filename_prefix: 'up/x4' }),
      '8': n('SaveImage', { images: ['6', 0], filename_prefix: 'up/x2' }),
    };
    const v = await validatePrompt(prompt, rt.registry);
    if (!v.ok) throw new Error(JSON.stringify(v.node_errors));
    const r = await new Executor().run(v.graph);
    expect(r.status, r.error?.exception_message).toBe('success');
    const size = async (id: string) => {
      const img = (r.outputs[id]!.images as Array<{ filename: string; subfolder: string }>)[0]!;
      return sharp(readFileSync(join(rt.env.outputDir, img.subfolder, img.filename))).metadata();
    };
    expect(await size('7')).toMatchObject({ width: 160, height: 96 });
    expect(await size('8')).toMatchObject({ width: 80, height: 48 });
  }, 120_000);

  it('an image wider than a tile is upscaled in tiles that blend into the untiled result', async () => {
    const [model] = (await exec('UpscaleModelLoader', { model_name: 'realesrgan-x2-unshuffle.safetensors' })) as [UpscaleModel];
    const [loaded] = (await exec('LoadImage', { image: DEMO_INPUT_IMAGE })) as [ImageBatch];
    const [wide] = (await exec('ImageScale', { image: loaded, upscale_method: 'bilinear', width: 520, height: 6, crop: 'disabled' })) as [ImageBatch];
    const [out] = (await exec('ImageUpscaleWithModel', { upscale_model: model, image: wide })) as [ImageBatch];
    expect(out.shape).toEqual([1, 12, 1040, 3]);
    // One call over the whole image (a tile larger than it) differs from the 512/32 tiling only along the seam.
    const whole = await upscaleImage(model, wide, 4096, 32);
    const diff = out.data.reduce((m, v, i) => Math.max(m, Math.abs(v - whole.data[i]!)), 0);
    expect(diff).toBeGreaterThan(0);
    expect(diff).toBeLessThan(0.05);
    expect(out.data.every((v) => v >= 0 && v <= 1)).toBe(true);
  }, 120_000);

  it('a .pth copy (PyTorch zip pickle) loads through the restricted reader and upscales identically', async () => {
    const dir = join(rt.env.folders.modelsDir, 'upscale_models');
    writeFileSync(join(dir, 'esrgan-old-x4.pth'), safetensorsToTorchZip(join(MODELS, 'esrgan-old-x4.safetensors')));
    expect(rt.env.folders.list('upscale_models')).toContain('esrgan-old-x4.pth');
    const [pth] = (await exec('UpscaleModelLoader', { model_name: 'esrgan-old-x4.pth' })) as [UpscaleModel];
    const [st] = (await exec('UpscaleModelLoader', { model_name: 'esrgan-old-x4.safetensors' })) as [UpscaleModel];
    const [loaded] = (await exec('LoadImage', { image: DEMO_INPUT_IMAGE })) as [ImageBatch];
    const [small] = (await exec('ImageScale', { image: loaded, upscale_method: 'bilinear', width: 20, height: 12, crop: 'disabled' })) as [ImageBatch];
    const [a] = (await exec('ImageUpscaleWithModel', { upscale_model: pth, image: small })) as [ImageBatch];
    const [b] = (await exec('ImageUpscaleWithModel', { upscale_model: st, image: small })) as [ImageBatch];
    expect(a.shape).toEqual([1, 48, 80, 3]);
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
  }, 120_000);

  it('a file that is not an RRDBNet is refused naming the key it looked for', async () => {
    const dir = join(rt.env.folders.modelsDir, 'upscale_models');
    copyFileSync(join(rt.env.folders.modelsDir, 'controlnet', 'resflow-demo-controlnet.safetensors'), join(dir, 'not-esrgan.safetensors'));
    await expect(exec('UpscaleModelLoader', { model_name: 'not-esrgan.safetensors' })).rejects.toThrow(/model\.0\.weight.*conv_first|not an ESRGAN/);
  });
});
