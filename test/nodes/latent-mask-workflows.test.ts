import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { Executor } from '../../runtime/executor/executor.js';
import { validatePrompt } from '../../runtime/executor/validate.js';
import type { ImageBatch } from '../../runtime/image/image.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import { DEMO_ARCH, DEMO_CHECKPOINT, DEMO_INPUT_IMAGE, DEMO_TOKENIZER, DEMO_UNET } from '../../runtime/models/synthetic/demo.js';
import { writeSyntheticCheckpoint } from '../../runtime/models/synthetic/generate.js';
import { sd1CheckpointKeyShapes } from '../../runtime/models/synthetic/tables.js';
import type { MaskTensor } from '../../runtime/sampling/types.js';
import type { ConditioningValue, LatentValue } from '../../nodes/core/types.js';
import { captureNode, demoRuntime, type TestRuntime } from './helpers.js';

/** Latent, mask, inpainting and image nodes in API prompts through the executor on the demo model. */

type Node = ApiPrompt[string];
const n = (class_type: string, inputs: Record<string, unknown>): Node => ({ class_type, inputs }) as Node;

const { spec: CAPTURE, captured } = captureNode();
const cap = (from: [string, number], key: string) => n('TestCapture', { value: from, key });

async function run(rt: TestRuntime, prompt: ApiPrompt): Promise<void> {
  const v = await validatePrompt(prompt, rt.registry);
  if (!v.ok) throw new Error(`invalid: ${JSON.stringify(v.node_errors)} ${v.error.message}`);
  const r = await new Executor().run(v.graph);
  if (r.status !== 'success') throw new Error(`run failed: ${JSON.stringify(r.error ?? r.interrupted)}`);
}

/** Checkpoint, prompts, the demo image at 64x48, and a mask that is 0 on the left half, 1 on the right. */
const COMMON: ApiPrompt = {
  '1': n('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT }),
  '2': n('CLIPTextEncode', { text: 'a red house by a lake', clip: ['1', 1] }),
  '4': n('CLIPTextEncode', { text: 'blurry', clip: ['1', 1] }),
  '6': n('LoadImage', { image: DEMO_INPUT_IMAGE }),
  '7': n('ImageScale', { image: ['6', 0], upscale_method: 'bilinear', width: 64, height: 48, crop: 'center' }),
  '8': n('SolidMask', { value: 1, width: 32, height: 48 }),
  '9': n('MaskToImage', { mask: ['8', 0] }),
  '10': n('ImagePadForOutpaint', { image: ['9', 0], left: 0, top: 0, right: 32, bottom: 0, feathering: 0 }),
};
const ksampler = (latent: [string, number], positive: [string, number] = ['2', 0], negative: [string, number] = ['4', 0], denoise = 1) =>
  n('KSampler', { model: ['1', 0], seed: 11, steps: 2, cfg: 5, sampler_name: 'euler', scheduler: 'normal', positive, negative, latent_image: latent, denoise });

const latent = (key: string) => captured.get(key) as LatentValue;
const mask = (key: string) => captured.get(key) as MaskTensor;
const image = (key: string) => captured.get(key) as ImageBatch;

/** Max |a - b| over the latent cells with x in [x0, x1). */
function diffCols(a: LatentValue, b: LatentValue, x0: number, x1: number): number {
  const [B, C, H, W] = a.samples.shape;
  let m = 0;
  for (let i = 0; i < B * C * H; i++) for (let x = x0; x < x1; x++) m = Math.max(m, Math.abs(a.samples.data[i * W + x]! - b.samples.data[i * W + x]!));
  return m;
}

describe('latent, mask, inpainting and image nodes in workflows (demo model)', () => {
  let rt: TestRuntime;
  beforeAll(async () => {
    rt = await demoRuntime('resflow-latent-wf-');
    rt.registry.register(CAPTURE);
  }, 120_000);

  it('masks: SolidMask, MaskToImage, ImagePadForOutpaint, InvertMask, GrowMask, FeatherMask, ImageToMask = LoadImageMask', async () => {
    await run(rt, {
      ...COMMON,
      '11': n('InvertMask', { mask: ['10', 1] }),
      '12': n('GrowMask', { mask: ['10', 1], expand: 3, tapered_corners: true }),
      '13': n('FeatherMask', { mask: ['8', 0], left: 4, top: 0, right: 0, bottom: 0 }),
      '14': n('ImageToMask', { image: ['6', 0], channel: 'green' }),
      '15': n('LoadImageMask', { image: DEMO_INPUT_IMAGE, channel: 'green' }),
      '20': cap(['10', 0], 'padded'),
      '21': cap(['10', 1], 'pad-mask'),
      '22': cap(['11', 0], 'inverted'),
      '23': cap(['12', 0], 'grown'),
      '24': cap(['13', 0], 'feathered'),
      '25': cap(['14', 0], 'green'),
      '26': cap(['15', 0], 'green-file'),
    });
    const padded = image('padded');
    expect(padded.shape).toEqual([1, 48, 64, 3]);
    expect(padded.data[(10 * 64 + 5) * 3]).toBe(1);
    expect(padded.data[(10 * 64 + 50) * 3]).toBe(0.5);
    const pm = mask('pad-mask');
    expect(pm.shape).toEqual([1, 48, 64]);
    expect(pm.data[10 * 64 + 31]).toBe(0);
    expect(pm.data[10 * 64 + 32]).toBe(1);
    expect(mask('inverted').data[10 * 64 + 31]).toBe(1);
    // Growing the right half by 3 reaches column 29.
    expect(mask('grown').data[10 * 64 + 29]).toBe(1);
    expect(mask('grown').data[10 * 64 + 28]).toBe(0);
    expect(Array.from(mask('feathered').data.subarray(0, 5))).toEqual([0.25, 0.5, 0.75, 1, 1]);
    const g = mask('green');
    expect(g.data.some((v) => v > 0)).toBe(true);
    expect(Array.from(mask('green-file').data)).toEqual(Array.from(g.data));
  }, 120_000);

  it('LoadImage and LoadImageMask read the alpha channel as 1 - alpha (painted-out = 1)', async () => {
    const w = 8;
    const h = 6;
    const rgba = Buffer.alloc(w * h * 4);
    for (let i = 0; i < w * h; i++) rgba.set([200, 100, 50, i < w * 3 ? 255 : 0], i * 4);
    await sharp(rgba, { raw: { width: w, height: h, channels: 4 } }).png().toFile(join(rt.env.inputDir, 'painted.png'));
    await run(rt, {
      '1': n('LoadImage', { image: 'painted.png' }),
      '2': n('LoadImageMask', { image: 'painted.png', channel: 'alpha' }),
      '3': n('LoadImageMask', { image: 'painted.png', channel: 'red' }),
      '4': cap(['1', 1], 'load-mask'),
      '5': cap(['2', 0], 'alpha-mask'),
      '6': cap(['3', 0], 'red-mask'),
      '7': cap(['1', 0], 'load-image'),
    });
    const expected = Array.from({ length: w * h }, (_, i) => (i < w * 3 ? 0 : 1));
    expect(Array.from(mask('load-mask').data)).toEqual(expected);
    expect(Array.from(mask('alpha-mask').data)).toEqual(expected);
    expect(mask('red-mask').data[0]).toBeCloseTo(200 / 255, 6);
    expect(image('load-image').shape).toEqual([1, h, w, 3]);
  }, 120_000);

  it('SetLatentNoiseMask: KSampler keeps the latent where the mask is 0 and repaints where it is 1', async () => {
    await run(rt, {
      ...COMMON,
      '11': n('VAEEncode', { pixels: ['7', 0], vae: ['1', 2] }),
      '12': n('SetLatentNoiseMask', { samples: ['11', 0], mask: ['10', 1] }),
      '13': ksampler(['12', 0]),
      '20': cap(['11', 0], 'encoded'),
      '21': cap(['13', 0], 'inpainted'),
    });
    const enc = latent('encoded');
    const out = latent('inpainted');
    expect(out.samples.shape).toEqual([1, 4, 6, 8]);
    expect(diffCols(out, enc, 0, 4)).toBeLessThan(1e-3);
    expect(diffCols(out, enc, 4, 8)).toBeGreaterThan(0.05);
  }, 120_000);

  it('VAEEncodeForInpaint and InpaintModelConditioning run through KSampler and VAEDecode', async () => {
    await run(rt, {
      ...COMMON,
      '11': n('VAEEncodeForInpaint', { pixels: ['7', 0], vae: ['1', 2], mask: ['10', 1], grow_mask_by: 6 }),
      '12': ksampler(['11', 0]),
      '13': n('InpaintModelConditioning', { positive: ['2', 0], negative: ['4', 0], vae: ['1', 2], pixels: ['7', 0], mask: ['10', 1], noise_mask: true }),
      '14': ksampler(['13', 2], ['13', 0], ['13', 1]),
      '15': n('VAEDecode', { samples: ['14', 0], vae: ['1', 2] }),
      '20': cap(['11', 0], 'for-inpaint'),
      '21': cap(['12', 0], 'for-inpaint-out'),
      '22': cap(['13', 0], 'imc-pos'),
      '23': cap(['13', 2], 'imc-latent'),
      '24': cap(['15', 0], 'imc-image'),
    });
    const fi = latent('for-inpaint');
    // Grown by 6 (2 up/left): the noise mask starts at column 30 of the 64-pixel image.
    expect(fi.noiseMask?.shape).toEqual([1, 1, 48, 64]);
    expect(fi.noiseMask!.data[10 * 64 + 29]).toBe(0);
    expect(fi.noiseMask!.data[10 * 64 + 30]).toBe(1);
    expect(diffCols(latent('for-inpaint-out'), fi, 0, 3)).toBeLessThan(1e-3);
    const pos = captured.get('imc-pos') as ConditioningValue;
    expect(pos.concatLatent?.shape).toEqual([1, 4, 6, 8]);
    expect(pos.concatMask?.shape).toEqual([1, 1, 48, 64]);
    expect(latent('imc-latent').noiseMask).toBeDefined();
    expect(image('imc-image').shape).toEqual([1, 48, 64, 3]);
  }, 120_000);

  it('a 9-channel inpainting checkpoint gets the mask and masked image as extra UNet channels', async () => {
    const arch = { ...DEMO_ARCH, unet: { ...DEMO_UNET, inChannels: 9 } };
    writeSyntheticCheckpoint(join(rt.env.folders.modelsDir, 'checkpoints', 'inpaint-9ch.safetensors'), sd1CheckpointKeyShapes(arch), {
      seed: 99,
      metadata: { 'resflow.unet.num_heads': '2', 'resflow.tokenizer': DEMO_TOKENIZER },
    });
    const prompt: ApiPrompt = {
      ...COMMON,
      '1': n('CheckpointLoaderSimple', { ckpt_name: 'inpaint-9ch.safetensors' }),
      '11': n('InpaintModelConditioning', { positive: ['2', 0], negative: ['4', 0], vae: ['1', 2], pixels: ['7', 0], mask: ['10', 1], noise_mask: true }),
      '12': ksampler(['11', 2], ['11', 0], ['11', 1]),
      '13': n('VAEEncode', { pixels: ['7', 0], vae: ['1', 2] }),
      '14': n('SetLatentNoiseMask', { samples: ['13', 0], mask: ['10', 1] }),
      '15': ksampler(['14', 0]),
      '20': cap(['12', 0], 'inpaint-model'),
      '21': cap(['15', 0], 'inpaint-model-plain'),
      '22': cap(['13', 0], 'inpaint-enc'),
    };
    await run(rt, prompt);
    const a = latent('inpaint-model');
    const b = latent('inpaint-model-plain');
    const enc = latent('inpaint-enc');
    // Outside the mask both keep the image; inside, the greyed-out concat image changes the prediction.
    expect(diffCols(a, enc, 0, 4)).toBeLessThan(1e-3);
    expect(diffCols(b, enc, 0, 4)).toBeLessThan(1e-3);
    expect(diffCols(a, b, 4, 8)).toBeGreaterThan(1e-3);
  }, 120_000);

  it('SamplerCustomAdvanced honours the noise mask and batch_index like KSampler', async () => {
    const custom = (latent: [string, number]) => ({
      '30': n('RandomNoise', { noise_seed: 11 }),
      '31': n('CFGGuider', { model: ['1', 0], positive: ['2', 0], negative: ['4', 0], cfg: 5 }),
      '32': n('KSamplerSelect', { sampler_name: 'euler' }),
      '33': n('BasicScheduler', { model: ['1', 0], scheduler: 'normal', steps: 2, denoise: 1 }),
      '34': n('SamplerCustomAdvanced', { noise: ['30', 0], guider: ['31', 0], sampler: ['32', 0], sigmas: ['33', 0], latent_image: latent }),
    });
    await run(rt, {
      ...COMMON,
      '11': n('VAEEncode', { pixels: ['7', 0], vae: ['1', 2] }),
      '12': n('SetLatentNoiseMask', { samples: ['11', 0], mask: ['10', 1] }),
      '13': ksampler(['12', 0]),
      ...custom(['12', 0]),
      '20': cap(['11', 0], 'c-enc'),
      '21': cap(['34', 0], 'c-custom'),
      '22': cap(['13', 0], 'c-ksampler'),
    });
    const enc = latent('c-enc');
    const out = latent('c-custom');
    expect(diffCols(out, enc, 0, 4)).toBeLessThan(1e-3);
    expect(diffCols(out, latent('c-ksampler'), 0, 8)).toBeLessThan(1e-3);
    await run(rt, {
      ...COMMON,
      '11': n('EmptyLatentImage', { width: 64, height: 48, batch_size: 2 }),
      '12': n('LatentFromBatch', { samples: ['11', 0], batch_index: 1, length: 1 }),
      '13': ksampler(['12', 0]),
      ...custom(['12', 0]),
      '21': cap(['34', 0], 'b-custom'),
      '22': cap(['13', 0], 'b-ksampler'),
    });
    expect(diffCols(latent('b-custom'), latent('b-ksampler'), 0, 8)).toBeLessThan(1e-3);
  }, 120_000);

  it('LatentFromBatch keeps each item its batch noise: item 1 sampled alone equals item 1 of the batch', async () => {
    await run(rt, {
      ...COMMON,
      '11': n('EmptyLatentImage', { width: 64, height: 48, batch_size: 2 }),
      '12': ksampler(['11', 0]),
      '13': n('LatentFromBatch', { samples: ['11', 0], batch_index: 1, length: 1 }),
      '14': ksampler(['13', 0]),
      '15': n('RepeatLatentBatch', { samples: ['13', 0], amount: 3 }),
      '20': cap(['12', 0], 'batch'),
      '21': cap(['14', 0], 'item1'),
      '22': cap(['15', 0], 'repeated'),
    });
    const batch = latent('batch').samples.data;
    const item = latent('item1').samples.data;
    expect(item.length * 2).toBe(batch.length);
    const second = batch.subarray(item.length);
    expect(item.reduce((m, v, i) => Math.max(m, Math.abs(v - second[i]!)), 0)).toBeLessThan(1e-3);
    expect(item.reduce((m, v, i) => Math.max(m, Math.abs(v - batch[i]!)), 0)).toBeGreaterThan(1e-2);
    const rep = latent('repeated');
    expect(rep.samples.shape).toEqual([3, 4, 6, 8]);
    expect(rep.batchIndex).toEqual([1, 2, 3]);
  }, 120_000);

  it('LatentUpscale / LatentUpscaleBy (bislerp, bicubic), LatentCrop, LatentComposite(Masked), LatentBlend', async () => {
    await run(rt, {
      ...COMMON,
      '11': n('VAEEncode', { pixels: ['7', 0], vae: ['1', 2] }),
      '12': n('LatentUpscaleBy', { samples: ['11', 0], upscale_method: 'bislerp', scale_by: 1.5 }),
      '13': n('LatentUpscale', { samples: ['11', 0], upscale_method: 'bicubic', width: 0, height: 96, crop: 'disabled' }),
      '14': n('LatentCrop', { samples: ['13', 0], width: 64, height: 64, x: 16, y: 8 }),
      '15': n('LatentComposite', { samples_to: ['13', 0], samples_from: ['14', 0], x: 0, y: 0, feather: 0 }),
      '16': n('LatentCompositeMasked', { destination: ['11', 0], source: ['14', 0], x: 8, y: 8, resize_source: false }),
      '17': n('LatentBlend', { samples1: ['11', 0], samples2: ['13', 0], blend_factor: 1 }),
      '18': ksampler(['12', 0], ['2', 0], ['4', 0], 0.5),
      '20': cap(['12', 0], 'by'),
      '21': cap(['13', 0], 'up'),
      '22': cap(['14', 0], 'crop'),
      '23': cap(['15', 0], 'comp'),
      '24': cap(['16', 0], 'comp-masked'),
      '25': cap(['17', 0], 'blend'),
      '26': cap(['11', 0], 'enc'),
      '27': cap(['18', 0], 'hires'),
    });
    expect(latent('by').samples.shape).toEqual([1, 4, 9, 12]);
    expect(latent('up').samples.shape).toEqual([1, 4, 12, 16]);
    const crop = latent('crop').samples;
    expect(crop.shape).toEqual([1, 4, 8, 8]);
    const up = latent('up').samples;
    // Crop origin (2, 1) cells: the first cropped value is up[0, 0, 1, 2].
    expect(crop.data[0]).toBe(up.data[1 * 16 + 2]);
    const comp = latent('comp').samples;
    expect(comp.data[0]).toBe(crop.data[0]);
    expect(comp.data[9 * 16 + 12]).toBe(up.data[9 * 16 + 12]);
    const cm = latent('comp-masked').samples;
    expect(cm.shape).toEqual([1, 4, 6, 8]);
    expect(cm.data[1 * 8 + 1]).toBe(crop.data[0]);
    expect(Array.from(latent('blend').samples.data)).toEqual(Array.from(latent('enc').samples.data));
    expect(latent('hires').samples.shape).toEqual([1, 4, 9, 12]);
  }, 120_000);

  it('ImageScaleBy (lanczos), ImageScale (bicubic), ImageInvert, ImageBatch, ImageCrop', async () => {
    await run(rt, {
      ...COMMON,
      '11': n('ImageScaleBy', { image: ['7', 0], upscale_method: 'lanczos', scale_by: 0.5 }),
      '12': n('ImageInvert', { image: ['7', 0] }),
      '13': n('ImageBatch', { image1: ['7', 0], image2: ['11', 0] }),
      '14': n('ImageCrop', { image: ['7', 0], width: 20, height: 100, x: 50, y: 40 }),
      '15': n('ImageScale', { image: ['7', 0], upscale_method: 'bicubic', width: 0, height: 24, crop: 'disabled' }),
      '16': n('SaveImage', { images: ['13', 0], filename_prefix: 'image-ops' }),
      '20': cap(['7', 0], 'img'),
      '21': cap(['11', 0], 'half'),
      '22': cap(['12', 0], 'inv'),
      '23': cap(['13', 0], 'batch'),
      '24': cap(['14', 0], 'crop'),
      '25': cap(['15', 0], 'bicubic'),
    });
    const img = image('img');
    const half = image('half');
    expect(half.shape).toEqual([1, 24, 32, 3]);
    expect(half.data.every((v) => Number.isInteger(Math.round(v * 255 * 1e4) / 1e4))).toBe(true);
    expect(image('inv').data[7]).toBeCloseTo(1 - img.data[7]!, 6);
    expect(image('batch').shape).toEqual([2, 48, 64, 3]);
    const crop = image('crop');
    expect(crop.shape).toEqual([1, 8, 14, 3]);
    expect(crop.data[0]).toBe(img.data[(40 * 64 + 50) * 3]);
    expect(image('bicubic').shape).toEqual([1, 24, 32, 3]);
  }, 120_000);
});
