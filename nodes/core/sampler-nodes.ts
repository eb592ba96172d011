import { totalmem } from 'node:os';
import sharp from 'sharp';
import type { Vae } from '../../runtime/models/vae/index.js';
import type { ImageBatch } from '../../runtime/image/image.js';
import { latentPreview } from '../../runtime/sampling/preview.js';
import { sample, type SampleOptions } from '../../runtime/sampling/sample.js';
import { SAMPLER_NAMES } from '../../runtime/sampling/samplers/index.js';
import { SCHEDULER_NAMES } from '../../runtime/sampling/schedulers.js';
import type { EpsModel, Latent } from '../../runtime/sampling/types.js';
import type { NodeContext, NodeSpec } from '../spec.js';
import { sdxlSamplerModel } from './sdxl-nodes.js';
import { refinerSamplerModel } from './refiner-nodes.js';
import type { ConditioningValue, LatentValue, ModelValue } from './types.js';

/** Seeds are 64-bit in ComfyUI; JSON numbers past 2^53 have already lost digits, so round to a bigint. */
function seedOf(v: unknown): number | bigint {
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : BigInt(Math.round(n));
}

interface KSamplerArgs {
  model: ModelValue;
  seed: number | bigint;
  steps: number;
  cfg: number;
  sampler: string;
  scheduler: string;
  positive: ConditioningValue;
  negative: ConditioningValue;
  latent: LatentValue;
  denoise: number;
  extra?: Partial<SampleOptions>;
}

/**
 * A conditioning from another model's text encoder fails deep inside the UNet session with a shape
 * error; checked here it names the cause.
 */
function checkContextWidth(model: ModelValue, cond: ConditioningValue, side: string): void {
  const want = model.unet.base.config.contextDim;
  const got = cond.contextShape[2];
  if (want && got !== want) {
    throw new Error(`the ${side} conditioning is ${got} wide but this ${model.family === 'sdxl' ? 'SDXL' : 'SD1.x'} model takes ${want}: encode it with this checkpoint's CLIP`);
  }
}

/** The UNet as the sampler calls it: SDXL adds each conditioning's y; SD1.x needs nothing more. */
function samplerModel(a: KSamplerArgs): EpsModel {
  checkContextWidth(a.model, a.positive, 'positive');
  checkContextWidth(a.model, a.negative, 'negative');
  if (a.model.family === 'sdxl') return sdxlSamplerModel(a.model, a.positive, a.negative, a.latent.samples.shape);
  if (a.model.family === 'sdxl-refiner') return refinerSamplerModel(a.model, a.positive, a.negative, a.latent.samples.shape);
  return a.model.unet.epsModel();
}

/**
 * Peak UNet activation bytes per latent pixel and model channel, measured on SD1.5 (768², batch 2 with CFG:
 * ~1 GB above the weights). Used to refuse sizes this machine cannot hold before spending minutes on them.
 */
const ACTIVATION_BYTES_PER_CHANNEL_PIXEL = 4 * 48;

function checkActivationsFit(a: KSamplerArgs): void {
  const [b, , h, w] = a.latent.samples.shape;
  const batch = a.cfg === 1 ? b : 2 * b;
  const need = batch * a.model.unet.base.config.modelChannels * h * w * ACTIVATION_BYTES_PER_CHANNEL_PIXEL;
  const available = 0.9 * totalmem() - process.memoryUsage().rss;
  if (need > available) {
    const gb = (x: number) => `${(x / 2 ** 30).toFixed(1)} GiB`;
    throw new Error(`a ${w * 8}×${h * 8} image (batch ${b}) needs about ${gb(need)} for the UNet's activations; ${gb(Math.max(0, available))} is available. Use a smaller size or batch`);
  }
}

/** Runs the sampler with per-step progress and a small JPEG preview of the current prediction. */
export async function runKSampler(a: KSamplerArgs, ctx: NodeContext): Promise<LatentValue> {
  checkActivationsFit(a);
  const total = a.extra?.endStep !== undefined || a.extra?.startStep !== undefined ? undefined : a.steps;
  const out: Latent = await sample({
    model: samplerModel(a),
    modelSampling: a.model.sampling,
    sampler: a.sampler,
    scheduler: a.scheduler,
    steps: a.steps,
    cfg: a.cfg,
    denoise: a.denoise,
    seed: a.seed,
    latent: a.latent.samples,
    positive: a.positive,
    negative: a.negative,
    signal: ctx.signal,
    ...a.extra,
    onStep: async (p) => {
      const prev = latentPreview({ data: p.denoised, shape: p.shape }, a.model.sampling.latentFormat);
      const jpeg = await sharp(Buffer.from(prev.rgb.buffer, prev.rgb.byteOffset, prev.rgb.byteLength), {
        raw: { width: prev.width, height: prev.height, channels: 3 },
      })
        .jpeg({ quality: 70 })
        .toBuffer();
      ctx.progress(p.step + 1, total ?? p.totalSteps, { format: 'JPEG', data: new Uint8Array(jpeg) });
    },
  });
  return { ...a.latent, samples: out };
}

const COMMON = {
  steps: { type: 'INT', default: 20, min: 1, max: 10000 },
  cfg: { type: 'FLOAT', default: 8, min: 0, max: 100, step: 0.1, round: 0.01 },
  sampler_name: { type: 'COMBO', options: SAMPLER_NAMES },
  scheduler: { type: 'COMBO', options: SCHEDULER_NAMES },
  positive: { type: 'CONDITIONING' },
  negative: { type: 'CONDITIONING' },
  latent_image: { type: 'LATENT' },
} as const;

const SEED = { type: 'INT', default: 0, min: 0, max: 0xffffffffffffffff, control_after_generate: true } as const;

/** The inputs KSampler and KSamplerAdvanced share, read off the node's input values. */
function commonArgs(i: Record<string, unknown>): Omit<KSamplerArgs, 'seed' | 'denoise' | 'extra'> {
  return {
    model: i.model as ModelValue,
    steps: Number(i.steps),
    cfg: Number(i.cfg),
    sampler: String(i.sampler_name),
    scheduler: String(i.scheduler),
    positive: i.positive as ConditioningValue,
    negative: i.negative as ConditioningValue,
    latent: i.latent_image as LatentValue,
  };
}

export function samplerNodes(): NodeSpec[] {
  return [
    {
      name: 'KSampler',
      displayName: 'KSampler',
      category: 'sampling',
      description: 'Denoises a latent with the model, guided by the positive and negative conditioning.',
      inputs: {
        required: {
          model: { type: 'MODEL' },
          seed: SEED,
          ...COMMON,
          denoise: { type: 'FLOAT', default: 1, min: 0, max: 1, step: 0.01 },
        },
      },
      outputs: [{ type: 'LATENT' }],
      execute: async (i, ctx) => [await runKSampler({ ...commonArgs(i), seed: seedOf(i.seed), denoise: Number(i.denoise) }, ctx)],
    },
    {
      name: 'KSamplerAdvanced',
      displayName: 'KSampler (Advanced)',
      category: 'sampling',
      description: 'KSampler with a step window (start/end step), optional noise and leftover noise for chaining samplers.',
      inputs: {
        required: {
          model: { type: 'MODEL' },
          add_noise: { type: 'COMBO', options: ['enable', 'disable'] },
          noise_seed: SEED,
          ...COMMON,
          start_at_step: { type: 'INT', default: 0, min: 0, max: 10000 },
          end_at_step: { type: 'INT', default: 10000, min: 0, max: 10000 },
          return_with_leftover_noise: { type: 'COMBO', options: ['disable', 'enable'] },
        },
      },
      outputs: [{ type: 'LATENT' }],
      async execute(i, ctx) {
        const latent = await runKSampler(
          {
            ...commonArgs(i),
            seed: seedOf(i.noise_seed),
            denoise: 1,
            extra: {
              addNoise: i.add_noise === 'enable',
              startStep: Number(i.start_at_step),
              endStep: Number(i.end_at_step),
              returnWithLeftoverNoise: i.return_with_leftover_noise === 'enable',
            },
          },
          ctx,
        );
        return [latent];
      },
    },
  ];
}

type Shape4 = [number, number, number, number];

/** Above this many output pixels an untiled decode's attention would need GBs: decode in tiles instead. */
const AUTO_TILE_PIXELS = 1536 * 1536;

export function vaeNodes(): NodeSpec[] {
  return [
    {
      name: 'VAEDecode',
      displayName: 'VAE Decode',
      category: 'latent',
      inputs: { required: { samples: { type: 'LATENT' }, vae: { type: 'VAE' } } },
      outputs: [{ type: 'IMAGE' }],
      async execute({ samples, vae }) {
        const v = vae as Vae;
        const s = (samples as LatentValue).samples;
        const z = { data: s.data, shape: [...s.shape] as Shape4 };
        const pixels = s.shape[2] * s.shape[3] * v.downscale * v.downscale;
        return [(pixels > AUTO_TILE_PIXELS ? await v.decodeTiled(z) : await v.decode(z)) as ImageBatch];
      },
    },
    {
      name: 'VAEDecodeTiled',
      displayName: 'VAE Decode (Tiled)',
      category: 'latent',
      description: 'Decodes in overlapping tiles so large images fit in memory.',
      inputs: {
        required: {
          samples: { type: 'LATENT' },
          vae: { type: 'VAE' },
          tile_size: { type: 'INT', default: 512, min: 64, max: 4096, step: 32 },
          overlap: { type: 'INT', default: 64, min: 0, max: 4096, step: 32 },
        },
      },
      outputs: [{ type: 'IMAGE' }],
      async execute({ samples, vae, tile_size, overlap }) {
        const s = (samples as LatentValue).samples;
        return [await (vae as Vae).decodeTiled({ data: s.data, shape: [...s.shape] as Shape4 }, { tileSize: Number(tile_size), overlap: Number(overlap) })];
      },
    },
    {
      name: 'VAEEncode',
      displayName: 'VAE Encode',
      category: 'latent',
      inputs: { required: { pixels: { type: 'IMAGE' }, vae: { type: 'VAE' } } },
      outputs: [{ type: 'LATENT' }],
      async execute({ pixels, vae }) {
        const z = await (vae as Vae).encode(pixels as ImageBatch);
        const latent: LatentValue = { samples: { data: z.data, shape: [...z.shape] as Shape4 } };
        return [latent];
      },
    },
  ];
}
