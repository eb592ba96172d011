/**
 * ComfyUI's custom-sampling building blocks (SamplerCustom / SamplerCustomAdvanced): a noise source
 * with its seed, a guider that turns conditionings into a denoiser, a sampler choice and an explicit
 * sigma schedule. The sampler's own noise (default sampler or Brownian tree) is seeded with the noise
 * source's seed, so DisableNoise runs draw from seed 0 like ComfyUI.
 */
import { calcCondBatch } from './cond-batch.js';
import { resolveCondSides } from './cond-resolve.js';
import { inpaintConcat, maskedDenoiser, prepareDenoiseMask, type NoiseMask } from './inpaint.js';
import { prepareNoise } from '../latent/ops.js';
import { makeGuidedDenoiser, type CfgFunction } from './guidance.js';
import { processLatentIn, processLatentOut, type ModelSampling } from './model-sampling.js';
import { noiseSamplerFor, runSampler } from './sample.js';
import { getSampler, type SamplerOptions } from './samplers/index.js';
import { randnLike } from './torch-rng.js';
import { SamplingValidationError, numel, type Conditioning, type EpsModel, type GuidedDenoiser, type Latent, type NoiseSampler, type Shape4, type StepProgress } from './types.js';

/** RandomNoise / DisableNoise: the initial noise for a latent and the seed the sampler's draws use. */
export interface NoiseSource {
  readonly seed: number | bigint;
  /** `batchIndex`: the LATENT's batch_index (items split from a batch keep their noise). */
  generate(latent: Latent, batchIndex?: number[]): Float32Array;
}

export function randomNoise(seed: number | bigint): NoiseSource {
  return { seed, generate: (latent, batchIndex) => (batchIndex ? prepareNoise(seed, latent.shape, batchIndex) : randnLike(seed, latent.shape)) };
}

export function disableNoise(): NoiseSource {
  return { seed: 0, generate: (latent) => new Float32Array(latent.data.length) };
}

/** A guider: the model's sampling schedule and how its conditioned predictions are combined. */
export interface Guider {
  readonly modelSampling: ModelSampling;
  denoiser(shape: Shape4, signal?: AbortSignal, extra?: GuiderExtras): GuidedDenoiser;
}

/** Per-run inputs a guider passes to its conditionings' evaluation (an inpainting model's extra channels). */
export interface GuiderExtras {
  concat?: (entry: Conditioning) => Float32Array;
}

/**
 * The model as guiders see it. The UNet call may depend on the conditionings it serves (SDXL's y
 * vector), so it is built per (positive, negative) pair and latent shape.
 */
export interface GuiderModel {
  modelFor: (positive: Conditioning, negative: Conditioning, shape: Shape4) => EpsModel;
  modelSampling: ModelSampling;
  /** A model-level CFG replacement such as RescaleCFG. */
  cfgFunction?: CfgFunction;
}

/** CFGGuider: uncond + (cond - uncond) * cfg (cfg 1 skips the negative pass). */
export function cfgGuider(m: GuiderModel, positive: Conditioning, negative: Conditioning, cfg: number): Guider {
  return {
    modelSampling: m.modelSampling,
    denoiser: (shape, signal, extra) =>
      makeGuidedDenoiser({ model: m.modelFor(positive, negative, shape), modelSampling: m.modelSampling, positive, negative, cfg, shape, signal, cfgFunction: m.cfgFunction, concat: extra?.concat }),
  };
}

/** BasicGuider: the positive prediction alone. */
export function basicGuider(m: GuiderModel, conditioning: Conditioning): Guider {
  return cfgGuider({ modelFor: m.modelFor, modelSampling: m.modelSampling }, conditioning, conditioning, 1);
}

export type DualCfgStyle = 'regular' | 'nested';

/**
 * DualCFGGuider: cond1 guided against cond2 (cfg_conds) and cond2 against the negative
 * (cfg_cond2_negative). regular: cfg(cond2, neg, c2) + (cond1 - cond2) * c1;
 * nested: neg + c2 * ((cond2 + (cond1 - cond2) * c1) - neg).
 */
export function dualCfgGuider(
  m: GuiderModel,
  cond1: Conditioning,
  cond2: Conditioning,
  negative: Conditioning,
  cfgConds: number,
  cfgCond2Negative: number,
  style: DualCfgStyle = 'regular',
): Guider {
  return {
    modelSampling: m.modelSampling,
    denoiser: (shape, signal, extra) => {
      // calc_cond_batch over [positive, middle, negative]: areas and masks are twinned across all three.
      const ms = m.modelSampling;
      const sides = resolveCondSides([cond1, cond2, negative], extra?.concat ? { shape, ms, concat: extra.concat } : { shape, ms }, ['positive', 'middle', 'negative']);
      const ctx = { model: m.modelFor(cond1, negative, shape), ms, shape, signal };
      const guide = async (x: Float32Array, sigma: number, _step: Parameters<GuidedDenoiser>[2]) => {
        const [c, mid, neg] = (await calcCondBatch(sides, x, sigma, ctx)) as [Float32Array, Float32Array, Float32Array];
        const out = new Float32Array(x.length);
        for (let i = 0; i < out.length; i++) {
          out[i] =
            style === 'nested'
              ? neg[i]! + cfgCond2Negative * (mid[i]! + (c[i]! - mid[i]!) * cfgConds - neg[i]!)
              : neg[i]! + (mid[i]! - neg[i]!) * cfgCond2Negative + (c[i]! - mid[i]!) * cfgConds;
        }
        return { denoised: out, uncond: neg };
      };
      const denoiser: GuidedDenoiser = async (x, sigma, step) => (await guide(x, sigma, step)).denoised;
      denoiser.withUncond = guide;
      return denoiser;
    },
  };
}

/** KSamplerSelect's output: a sampler by ComfyUI name with its options. */
export interface SamplerChoice {
  name: string;
  options?: SamplerOptions;
}

export interface CustomSampleOptions {
  noise: NoiseSource;
  guider: Guider;
  sampler: SamplerChoice;
  sigmas: Float32Array;
  /** VAE-space latent; all zeros means txt2img (not scaled). */
  latent: Latent;
  /** SamplerCustom passes its noise_seed even when add_noise is off. */
  seed?: number | bigint;
  onStep?: (progress: StepProgress) => void | Promise<void>;
  /** Sees every draw of the sampler's noise sampler (for tests and debugging). */
  onNoise?: (sigma: number, sigmaNext: number, draw: Float32Array) => void;
  signal?: AbortSignal;
  /** The LATENT's noise_mask, batch_index, and the model's extra input channels (inpainting), as in KSampler. */
  noiseMask?: NoiseMask;
  batchIndex?: number[];
  concatChannels?: number;
}

function observed(ns: NoiseSampler, onNoise?: CustomSampleOptions['onNoise']): NoiseSampler {
  if (!onNoise) return ns;
  return (sigma, sigmaNext) => {
    const d = ns(sigma, sigmaNext);
    onNoise(sigma, sigmaNext, d);
    return d;
  };
}

/** guider.sample: returns the sampled latent and the last step's prediction (the `denoised_output`). */
export async function sampleCustom(o: CustomSampleOptions): Promise<{ samples: Latent; denoised: Latent }> {
  getSampler(o.sampler.name);
  const { latent, sigmas } = o;
  const shape: Shape4 = [...latent.shape];
  if (latent.data.length !== numel(shape)) throw new SamplingValidationError(`latent has ${latent.data.length} values, shape [${shape.join(', ')}] needs ${numel(shape)}`);
  if (!sigmas.every((v) => Number.isFinite(v) && v >= 0)) throw new SamplingValidationError('sigmas must be finite values >= 0');
  if (sigmas.length === 0) {
    const copy = { data: Float32Array.from(latent.data), shape };
    return { samples: copy, denoised: copy };
  }
  const ms = o.guider.modelSampling;
  const noise = o.noise.generate(latent, o.batchIndex);
  const isEmpty = latent.data.every((v) => v === 0);
  const latentIn = isEmpty ? latent.data : processLatentIn(ms.latentFormat, latent.data);
  const x0 = ms.noiseScaling(sigmas[0]!, noise, latentIn, ms.isMaxDenoise(sigmas[0]!));
  let lastDenoised = null as Float32Array | null;
  const seed = o.seed ?? o.noise.seed;
  const denoiseMask = o.noiseMask ? prepareDenoiseMask(o.noiseMask, shape) : undefined;
  const concat = o.concatChannels ? inpaintConcat({ channels: o.concatChannels, shape, latentFormat: ms.latentFormat, latent: latentIn, denoiseMask }) : undefined;
  const guided = o.guider.denoiser(shape, o.signal, concat ? { concat } : {});
  const out = await runSampler({
    sampler: o.sampler.name,
    samplerOptions: o.sampler.options,
    denoiser: denoiseMask ? maskedDenoiser(guided, denoiseMask, latentIn, noise) : guided,
    modelSampling: ms,
    sigmas,
    x: x0,
    shape,
    noiseSampler: observed(noiseSamplerFor(o.sampler.name, seed, sigmas, shape), o.onNoise),
    signal: o.signal,
    onStep: async (p) => {
      lastDenoised = p.denoised;
      await o.onStep?.(p);
    },
  });
  const samples = { data: processLatentOut(ms.latentFormat, out), shape };
  const denoised = lastDenoised ? { data: processLatentOut(ms.latentFormat, lastDenoised), shape } : samples;
  return { samples, denoised };
}
