import { totalmem } from 'node:os';
import sharp from 'sharp';
import { estimateUnetRun } from '../../runtime/models/unet/memory.js';
import { availableMemoryBytes, decodeWholeOrTiled, type Vae } from '../../runtime/models/vae/index.js';
import type { ImageBatch } from '../../runtime/image/image.js';
import { latentPreview } from '../../runtime/sampling/preview.js';
import { sample, type SampleOptions } from '../../runtime/sampling/sample.js';
import { SAMPLER_NAMES } from '../../runtime/sampling/samplers/index.js';
import { SCHEDULER_NAMES } from '../../runtime/sampling/schedulers.js';
import type { EpsModel, Latent } from '../../runtime/sampling/types.js';
import type { NodeContext, NodeSpec } from '../spec.js';
import { condEntries } from '../../runtime/sampling/cond-entries.js';
import { familyNodes } from './families.js';
import { latentSampleOptions } from './latent-ops-nodes.js';
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
    throw new Error(`the ${side} conditioning is ${got} wide but this ${familyNodes(model.family).family.label} model takes ${want}: encode it with this checkpoint's CLIP`);
  }
}

/** The UNet as the sampler calls it: the family adds what its UNet takes besides the context (SDXL's y). */
export function epsModelFor(model: ModelValue, positive: ConditioningValue, negative: ConditioningValue, latentShape: readonly number[], seed?: number | bigint): EpsModel {
  checkContextWidth(model, positive, 'positive');
  checkContextWidth(model, negative, 'negative');
  const fam = familyNodes(model.family);
  if (!fam.family.controlNet.supported && [positive, negative].some((c) => condEntries(c).some((e) => e.controls?.length))) {
    throw new Error(`ControlNets are not supported on ${fam.family.label} models: apply them to the base model's conditioning`);
  }
  return fam.samplerModel(model, positive, negative, latentShape, seed);
}

function samplerModel(a: KSamplerArgs): EpsModel {
  return epsModelFor(a.model, a.positive, a.negative, a.latent.samples.shape, a.seed);
}

/** Refuses sizes this machine cannot hold before spending minutes on them (see runtime/models/unet/memory.ts). */
export function checkActivationsFit(a: Pick<KSamplerArgs, 'model' | 'latent' | 'cfg'>): void {
  const [b, , h, w] = a.latent.samples.shape;
  const batch = a.cfg === 1 ? b : 2 * b;
  // From the UNet about to run (its block layout, and its weights unless its session is already open).
  const need = estimateUnetRun(a.model.unet.base, a.latent.samples.shape, batch).totalBytes;
  const available = Math.min(availableMemoryBytes(), 0.9 * totalmem() - process.memoryUsage().rss);
  if (need > available) {
    const gb = (x: number) => `${(x / 2 ** 30).toFixed(1)} GiB`;
    throw new Error(`a ${w * 8}×${h * 8} image (batch ${b}) needs about ${gb(need)} for the UNet's activations (and weights not yet loaded); ${gb(Math.max(0, available))} is available. Use a smaller size or batch`);
  }
}

/** Runs the sampler with per-step progress and a small JPEG preview of the current prediction. */
export async function runKSampler(a: KSamplerArgs, ctx: NodeContext): Promise<LatentValue> {
  checkActivationsFit(a);
  const total = a.extra?.endStep !== undefined || a.extra?.startStep !== undefined ? undefined : a.steps;
  const out: Latent = await sample({
    model: (a.model.epsWrappers ?? []).reduce((inner, wrap) => wrap(inner), samplerModel(a)),
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
    ...latentSampleOptions(a.model, a.latent, a.seed),
    cfgFunction: a.model.cfgFunction,
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


export function vaeNodes(): NodeSpec[] {
  return [
    {
      name: 'VAEDecode',
      displayName: 'VAE Decode',
      category: 'latent',
      inputs: { required: { samples: { type: 'LATENT' }, vae: { type: 'VAE' } } },
      outputs: [{ type: 'IMAGE' }],
      async execute({ samples, vae }, ctx) {
        const s = (samples as LatentValue).samples;
        // Whole like ComfyUI; tiles only when it cannot fit, and then the user is told.
        const { image, plan } = await decodeWholeOrTiled(vae as Vae, { data: s.data, shape: [...s.shape] as Shape4 });
        if (plan.mode === 'whole') return [image as ImageBatch];
        ctx.log(plan.reason);
        return { ui: { text: [plan.reason!] }, result: [image as ImageBatch] };
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
