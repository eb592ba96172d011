/**
 * ComfyUI's custom-sampling nodes (comfy_extras/nodes_custom_sampler.py): SAMPLER / SIGMAS / NOISE /
 * GUIDER values built by small nodes and run by SamplerCustom / SamplerCustomAdvanced.
 */
import sharp from 'sharp';
import {
  basicGuider,
  cfgGuider,
  disableNoise,
  dualCfgGuider,
  randomNoise,
  sampleCustom,
  type Guider,
  type GuiderModel,
  type NoiseSource,
  type SamplerChoice,
} from '../../runtime/sampling/custom-sampling.js';
import { latentPreview } from '../../runtime/sampling/preview.js';
import { SAMPLER_NAMES } from '../../runtime/sampling/samplers/index.js';
import { SCHEDULER_NAMES, betaScheduler, exponentialSigmas, karrasSigmas } from '../../runtime/sampling/schedulers.js';
import { basicSchedulerSigmas, flipSigmas, laplaceSigmas, polyexponentialSigmas, sdTurboSigmas, splitSigmas, splitSigmasDenoise, vpSigmas } from '../../runtime/sampling/sigma-ops.js';
import type { Conditioning, Shape4 } from '../../runtime/sampling/types.js';
import type { NodeContext, NodeSpec } from '../spec.js';
import { checkActivationsFit, epsModelFor } from './sampler-nodes.js';
import { latentSampleOptionsCustom } from './latent-ops-nodes.js';
import type { ConditioningValue, LatentValue, ModelValue } from './types.js';

/** The GUIDER link value: the runtime guider plus the model it samples (for previews and memory checks). */
export interface GuiderValue {
  guider: Guider;
  model: ModelValue;
  /** Whether a negative pass runs (doubles the UNet batch). */
  doubled: boolean;
}

function seedOf(v: unknown): number | bigint {
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : BigInt(Math.round(n));
}

function sigmasOf(v: unknown): Float32Array {
  if (!(v instanceof Float32Array)) throw new Error('sigmas input is not a SIGMAS value');
  return v;
}

function guiderModel(model: ModelValue): GuiderModel {
  return {
    modelFor: (positive: Conditioning, negative: Conditioning, shape: Shape4) => epsModelFor(model, positive as ConditioningValue, negative as ConditioningValue, shape),
    modelSampling: model.sampling,
    cfgFunction: model.cfgFunction,
  };
}

async function runCustom(
  noise: NoiseSource,
  g: GuiderValue,
  sampler: SamplerChoice,
  sigmas: Float32Array,
  latent: LatentValue,
  ctx: NodeContext,
  seed?: number | bigint,
): Promise<[LatentValue, LatentValue]> {
  checkActivationsFit({ model: g.model, latent, cfg: g.doubled ? 2 : 1 });
  const total = Math.max(sigmas.length - 1, 1);
  const { samples, denoised } = await sampleCustom({
    noise,
    guider: g.guider,
    sampler,
    sigmas,
    latent: latent.samples,
    seed,
    signal: ctx.signal,
    // Noise mask, batch_index noise and an inpainting model's channels, as KSampler takes them.
    ...latentSampleOptionsCustom(g.model, latent),
    onStep: async (p) => {
      const prev = latentPreview({ data: p.denoised, shape: p.shape }, g.model.sampling.latentFormat);
      const jpeg = await sharp(Buffer.from(prev.rgb.buffer, prev.rgb.byteOffset, prev.rgb.byteLength), { raw: { width: prev.width, height: prev.height, channels: 3 } })
        .jpeg({ quality: 70 })
        .toBuffer();
      ctx.progress(Math.min(p.step + 1, total), total, { format: 'JPEG', data: new Uint8Array(jpeg) });
    },
  });
  return [
    { ...latent, samples },
    { ...latent, samples: denoised },
  ];
}

const STEPS = { type: 'INT', default: 20, min: 1, max: 10000 } as const;
const SIGMA_MAX = { type: 'FLOAT', default: 14.614642, min: 0, max: 5000, step: 0.01 } as const;
const SIGMA_MIN = { type: 'FLOAT', default: 0.0291675, min: 0, max: 5000, step: 0.01 } as const;
const CFG = { type: 'FLOAT', default: 8, min: 0, max: 100, step: 0.1, round: 0.01 } as const;
const SEED = { type: 'INT', default: 0, min: 0, max: 0xffffffffffffffff, control_after_generate: true } as const;
const SIGMAS_OUT = [{ type: 'SIGMAS' }] as const;
const CATEGORY = 'sampling/custom_sampling';

export function customSamplingNodes(): NodeSpec[] {
  return [
    {
      name: 'KSamplerSelect',
      category: `${CATEGORY}/samplers`,
      inputs: { required: { sampler_name: { type: 'COMBO', options: SAMPLER_NAMES } } },
      outputs: [{ type: 'SAMPLER' }],
      execute: ({ sampler_name }) => [{ name: String(sampler_name) } satisfies SamplerChoice],
    },
    {
      name: 'BasicScheduler',
      category: `${CATEGORY}/schedulers`,
      inputs: {
        required: {
          model: { type: 'MODEL' },
          scheduler: { type: 'COMBO', options: SCHEDULER_NAMES },
          steps: STEPS,
          denoise: { type: 'FLOAT', default: 1, min: 0, max: 1, step: 0.01 },
        },
      },
      outputs: SIGMAS_OUT,
      execute: (i) => [basicSchedulerSigmas((i.model as ModelValue).sampling, String(i.scheduler), Number(i.steps), Number(i.denoise))],
    },
    {
      name: 'KarrasScheduler',
      category: `${CATEGORY}/schedulers`,
      inputs: { required: { steps: STEPS, sigma_max: SIGMA_MAX, sigma_min: SIGMA_MIN, rho: { type: 'FLOAT', default: 7, min: 0, max: 100, step: 0.01 } } },
      outputs: SIGMAS_OUT,
      execute: (i) => [karrasSigmas(Number(i.steps), Number(i.sigma_min), Number(i.sigma_max), Number(i.rho))],
    },
    {
      name: 'ExponentialScheduler',
      category: `${CATEGORY}/schedulers`,
      inputs: { required: { steps: STEPS, sigma_max: SIGMA_MAX, sigma_min: SIGMA_MIN } },
      outputs: SIGMAS_OUT,
      execute: (i) => [exponentialSigmas(Number(i.steps), Number(i.sigma_min), Number(i.sigma_max))],
    },
    {
      name: 'PolyexponentialScheduler',
      category: `${CATEGORY}/schedulers`,
      inputs: { required: { steps: STEPS, sigma_max: SIGMA_MAX, sigma_min: SIGMA_MIN, rho: { type: 'FLOAT', default: 1, min: 0, max: 100, step: 0.01 } } },
      outputs: SIGMAS_OUT,
      execute: (i) => [polyexponentialSigmas(Number(i.steps), Number(i.sigma_min), Number(i.sigma_max), Number(i.rho))],
    },
    {
      name: 'LaplaceScheduler',
      category: `${CATEGORY}/schedulers`,
      inputs: {
        required: {
          steps: STEPS,
          sigma_max: SIGMA_MAX,
          sigma_min: SIGMA_MIN,
          mu: { type: 'FLOAT', default: 0, min: -10, max: 10, step: 0.1 },
          beta: { type: 'FLOAT', default: 0.5, min: 0, max: 10, step: 0.1 },
        },
      },
      outputs: SIGMAS_OUT,
      execute: (i) => [laplaceSigmas(Number(i.steps), Number(i.sigma_min), Number(i.sigma_max), Number(i.mu), Number(i.beta))],
    },
    {
      name: 'VPScheduler',
      category: `${CATEGORY}/schedulers`,
      inputs: {
        required: {
          steps: STEPS,
          beta_d: { type: 'FLOAT', default: 19.9, min: 0, max: 5000, step: 0.01 },
          beta_min: { type: 'FLOAT', default: 0.1, min: 0, max: 5000, step: 0.01 },
          eps_s: { type: 'FLOAT', default: 0.001, min: 0, max: 1, step: 0.0001 },
        },
      },
      outputs: SIGMAS_OUT,
      execute: (i) => [vpSigmas(Number(i.steps), Number(i.beta_d), Number(i.beta_min), Number(i.eps_s))],
    },
    {
      name: 'BetaSamplingScheduler',
      category: `${CATEGORY}/schedulers`,
      inputs: {
        required: {
          model: { type: 'MODEL' },
          steps: STEPS,
          alpha: { type: 'FLOAT', default: 0.6, min: 0, max: 50, step: 0.01 },
          beta: { type: 'FLOAT', default: 0.6, min: 0, max: 50, step: 0.01 },
        },
      },
      outputs: SIGMAS_OUT,
      execute: (i) => [betaScheduler((i.model as ModelValue).sampling, Number(i.steps), Number(i.alpha), Number(i.beta))],
    },
    {
      name: 'SDTurboScheduler',
      category: `${CATEGORY}/schedulers`,
      inputs: { required: { model: { type: 'MODEL' }, steps: { type: 'INT', default: 1, min: 1, max: 10 }, denoise: { type: 'FLOAT', default: 1, min: 0, max: 1, step: 0.01 } } },
      outputs: SIGMAS_OUT,
      execute: (i) => [sdTurboSigmas((i.model as ModelValue).sampling, Number(i.steps), Number(i.denoise))],
    },
    {
      name: 'SplitSigmas',
      category: `${CATEGORY}/sigmas`,
      inputs: { required: { sigmas: { type: 'SIGMAS' }, step: { type: 'INT', default: 0, min: 0, max: 10000 } } },
      outputs: [
        { type: 'SIGMAS', name: 'high_sigmas' },
        { type: 'SIGMAS', name: 'low_sigmas' },
      ],
      execute: (i) => splitSigmas(sigmasOf(i.sigmas), Number(i.step)),
    },
    {
      name: 'SplitSigmasDenoise',
      category: `${CATEGORY}/sigmas`,
      inputs: { required: { sigmas: { type: 'SIGMAS' }, denoise: { type: 'FLOAT', default: 1, min: 0, max: 1, step: 0.01 } } },
      outputs: [
        { type: 'SIGMAS', name: 'high_sigmas' },
        { type: 'SIGMAS', name: 'low_sigmas' },
      ],
      execute: (i) => splitSigmasDenoise(sigmasOf(i.sigmas), Number(i.denoise)),
    },
    {
      name: 'FlipSigmas',
      category: `${CATEGORY}/sigmas`,
      inputs: { required: { sigmas: { type: 'SIGMAS' } } },
      outputs: SIGMAS_OUT,
      execute: (i) => [flipSigmas(sigmasOf(i.sigmas))],
    },
    {
      name: 'RandomNoise',
      category: `${CATEGORY}/noise`,
      inputs: { required: { noise_seed: SEED } },
      outputs: [{ type: 'NOISE' }],
      execute: (i) => [randomNoise(seedOf(i.noise_seed))],
    },
    {
      name: 'DisableNoise',
      category: `${CATEGORY}/noise`,
      inputs: { required: {} },
      outputs: [{ type: 'NOISE' }],
      execute: () => [disableNoise()],
    },
    {
      name: 'CFGGuider',
      category: `${CATEGORY}/guiders`,
      inputs: { required: { model: { type: 'MODEL' }, positive: { type: 'CONDITIONING' }, negative: { type: 'CONDITIONING' }, cfg: CFG } },
      outputs: [{ type: 'GUIDER' }],
      execute: (i) => {
        const model = i.model as ModelValue;
        const cfg = Number(i.cfg);
        return [{ guider: cfgGuider(guiderModel(model), i.positive as ConditioningValue, i.negative as ConditioningValue, cfg), model, doubled: cfg !== 1 } satisfies GuiderValue];
      },
    },
    {
      name: 'BasicGuider',
      category: `${CATEGORY}/guiders`,
      inputs: { required: { model: { type: 'MODEL' }, conditioning: { type: 'CONDITIONING' } } },
      outputs: [{ type: 'GUIDER' }],
      execute: (i) => {
        const model = i.model as ModelValue;
        return [{ guider: basicGuider(guiderModel(model), i.conditioning as ConditioningValue), model, doubled: false } satisfies GuiderValue];
      },
    },
    {
      name: 'DualCFGGuider',
      category: `${CATEGORY}/guiders`,
      inputs: {
        required: {
          model: { type: 'MODEL' },
          cond1: { type: 'CONDITIONING' },
          cond2: { type: 'CONDITIONING' },
          negative: { type: 'CONDITIONING' },
          cfg_conds: CFG,
          cfg_cond2_negative: CFG,
          style: { type: 'COMBO', options: ['regular', 'nested'] },
        },
      },
      outputs: [{ type: 'GUIDER' }],
      execute: (i) => {
        const model = i.model as ModelValue;
        const guider = dualCfgGuider(
          guiderModel(model),
          i.cond1 as ConditioningValue,
          i.cond2 as ConditioningValue,
          i.negative as ConditioningValue,
          Number(i.cfg_conds),
          Number(i.cfg_cond2_negative),
          i.style === 'nested' ? 'nested' : 'regular',
        );
        return [{ guider, model, doubled: true } satisfies GuiderValue];
      },
    },
    {
      name: 'SamplerCustom',
      category: CATEGORY,
      inputs: {
        required: {
          model: { type: 'MODEL' },
          add_noise: { type: 'BOOLEAN', default: true },
          noise_seed: SEED,
          cfg: CFG,
          positive: { type: 'CONDITIONING' },
          negative: { type: 'CONDITIONING' },
          sampler: { type: 'SAMPLER' },
          sigmas: { type: 'SIGMAS' },
          latent_image: { type: 'LATENT' },
        },
      },
      outputs: [
        { type: 'LATENT', name: 'output' },
        { type: 'LATENT', name: 'denoised_output' },
      ],
      async execute(i, ctx) {
        const model = i.model as ModelValue;
        const cfg = Number(i.cfg);
        const seed = seedOf(i.noise_seed);
        const g: GuiderValue = { guider: cfgGuider(guiderModel(model), i.positive as ConditioningValue, i.negative as ConditioningValue, cfg), model, doubled: cfg !== 1 };
        const noise = i.add_noise === false || i.add_noise === 'false' ? disableNoise() : randomNoise(seed);
        return runCustom(noise, g, i.sampler as SamplerChoice, sigmasOf(i.sigmas), i.latent_image as LatentValue, ctx, seed);
      },
    },
    {
      name: 'SamplerCustomAdvanced',
      category: CATEGORY,
      inputs: {
        required: {
          noise: { type: 'NOISE' },
          guider: { type: 'GUIDER' },
          sampler: { type: 'SAMPLER' },
          sigmas: { type: 'SIGMAS' },
          latent_image: { type: 'LATENT' },
        },
      },
      outputs: [
        { type: 'LATENT', name: 'output' },
        { type: 'LATENT', name: 'denoised_output' },
      ],
      execute: (i, ctx) => runCustom(i.noise as NoiseSource, i.guider as GuiderValue, i.sampler as SamplerChoice, sigmasOf(i.sigmas), i.latent_image as LatentValue, ctx),
    },
  ];
}
