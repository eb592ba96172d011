/**
 * Top-level sampling, ComfyUI's KSampler / KSamplerAdvanced path (nodes.common_ksampler ->
 * comfy.sample.sample -> KSampler.sample -> CFGGuider -> KSAMPLER): schedule, step window, latent
 * scaling, initial noise, the sampler loop with progress and cancellation, and scaling back out.
 */
import { makeGuidedDenoiser, type CfgFunction } from './guidance.js';
import { inpaintConcat, maskedDenoiser, prepareDenoiseMask, type NoiseMask } from './inpaint.js';
import { processLatentIn, processLatentOut, type ModelSampling } from './model-sampling.js';
import { BROWNIAN_SAMPLERS, getSampler, type SamplerOptions } from './samplers/index.js';
import { brownianTreeNoiseSampler } from './brownian.js';
import { getScheduler, scheduleSigmas } from './schedulers.js';
import { TorchGenerator, randnLike } from './torch-rng.js';
import {
  InterruptedError,
  SamplingValidationError,
  numel,
  type Conditioning,
  type Denoiser,
  type EpsModel,
  type GuidedDenoiser,
  type Latent,
  type NoiseFn,
  type NoiseSampler,
  type Shape4,
  type StepProgress,
} from './types.js';

export interface RunSamplerOptions {
  sampler: string;
  samplerOptions?: SamplerOptions;
  denoiser: GuidedDenoiser;
  modelSampling: ModelSampling;
  sigmas: Float32Array;
  /** Starting x in model space, already noise-scaled. */
  x: Float32Array;
  shape: Shape4;
  noiseSampler: NoiseSampler;
  onStep?: (progress: StepProgress) => void | Promise<void>;
  signal?: AbortSignal;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new InterruptedError();
}

/**
 * Runs one named sampler over a prepared x and schedule (ComfyUI's KSAMPLER.sample without the noise
 * scaling); the building block for custom guiders. Returns x in model space.
 */
export async function runSampler(options: RunSamplerOptions): Promise<Float32Array> {
  const fn = getSampler(options.sampler);
  const { signal, shape } = options;
  const totalSteps = options.sigmas.length - 1;
  const denoiser: Denoiser = async (x, sigma, step) => {
    throwIfAborted(signal);
    const out = await options.denoiser(x, sigma, step);
    throwIfAborted(signal);
    return out;
  };
  const withUncond = options.denoiser.withUncond;
  throwIfAborted(signal);
  const onStep = options.onStep;
  const out = await fn(
    {
      denoiser,
      denoiserWithUncond: withUncond
        ? async (x, sigma, step) => {
            throwIfAborted(signal);
            const out = await withUncond(x, sigma, step);
            throwIfAborted(signal);
            return out;
          }
        : undefined,
      x: options.x,
      sigmas: options.sigmas,
      noiseSampler: options.noiseSampler,
      modelSampling: options.modelSampling,
      callback: onStep
        ? (s) => onStep({ step: s.i, totalSteps, sigma: s.sigma, x: s.x, denoised: s.denoised, shape })
        : undefined,
    },
    options.samplerOptions,
  );
  throwIfAborted(signal);
  return options.modelSampling.inverseNoiseScaling(options.sigmas[options.sigmas.length - 1] ?? 0, out);
}

/**
 * The noise a sampler draws by default in ComfyUI: the torchsde Brownian tree over this schedule for
 * the SDE samplers, else default_noise_sampler.
 */
export function noiseSamplerFor(sampler: string, seed: number | bigint, sigmas: Float32Array, shape: readonly number[]): NoiseSampler {
  if (BROWNIAN_SAMPLERS.has(sampler) && sigmas.some((s) => s > 0)) return brownianTreeNoiseSampler(sigmas, numel(shape), seed);
  return defaultNoiseSampler(seed, shape);
}

/** ComfyUI's default noise sampler: a fresh generator on the run's seed, one randn(shape) per call. */
export function defaultNoiseSampler(seed: number | bigint, shape: readonly number[]): NoiseSampler {
  const generator = new TorchGenerator(seed);
  const n = numel(shape);
  return () => generator.randn(n);
}

export interface SampleOptions {
  model: EpsModel;
  modelSampling: ModelSampling;
  sampler: string;
  scheduler: string;
  steps: number;
  cfg: number;
  /** KSampler denoise in (0, 1]; default 1. */
  denoise?: number;
  seed: number | bigint;
  /** Input latent in VAE space (unscaled); zeros for txt2img. */
  latent: Latent;
  positive: Conditioning;
  negative: Conditioning;
  /** Initial noise, or how to make it; default randnLike (torch.manual_seed + randn). */
  noise?: Float32Array | NoiseFn;
  /** Noise for ancestral / SDE / lcm steps; default defaultNoiseSampler(seed, shape). */
  noiseSampler?: NoiseSampler;
  /** KSamplerAdvanced window: first step to run, and the step to stop at (exclusive). */
  startStep?: number;
  endStep?: number;
  /** KSamplerAdvanced add_noise; false starts from the latent as is. Default true. */
  addNoise?: boolean;
  /** KSamplerAdvanced return_with_leftover_noise; when false an early endStep still denoises to sigma 0. */
  returnWithLeftoverNoise?: boolean;
  /** Overrides scheduler / steps / denoise with an explicit schedule (SamplerCustom). */
  sigmas?: Float32Array;
  samplerOptions?: SamplerOptions;
  /** Replaces the CFG formula (ComfyUI's sampler_cfg_function, e.g. RescaleCFG). */
  cfgFunction?: CfgFunction;
  onStep?: (progress: StepProgress) => void | Promise<void>;
  signal?: AbortSignal;
  /** The LATENT's noise_mask: only where it is 1 is the latent resampled (SetLatentNoiseMask, inpainting). */
  noiseMask?: NoiseMask;
  /** Extra UNet input channels (inpainting models: 5); their values come from the conditioning and mask. */
  concatChannels?: number;
  /** Sees both guidance sides' predictions at every model evaluation. */
  onPredictions?: (cond: Float32Array, uncond: Float32Array, sigma: number) => void;
}

function checkStep(name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isInteger(v) && v >= 0)) {
    throw new SamplingValidationError(`${name} must be an integer >= 0, got ${v}`);
  }
}

function validate(o: SampleOptions): void {
  getSampler(o.sampler);
  if (o.sigmas) {
    if (o.sigmas.length < 1 || !o.sigmas.every((v) => Number.isFinite(v) && v >= 0)) {
      throw new SamplingValidationError('sigmas must be a non-empty list of finite values >= 0');
    }
  } else {
    getScheduler(o.scheduler);
    if (!(Number.isInteger(o.steps) && o.steps >= 1)) throw new SamplingValidationError(`steps must be an integer >= 1, got ${o.steps}`);
  }
  if (typeof o.seed !== 'bigint' && !Number.isSafeInteger(o.seed)) {
    throw new SamplingValidationError(`seed must be an integer (a bigint above 2^53), got ${o.seed}`);
  }
  const denoise = o.denoise ?? 1;
  if (!(denoise > 0 && denoise <= 1)) throw new SamplingValidationError(`denoise must be in (0, 1], got ${denoise}`);
  if (!Number.isFinite(o.cfg) || o.cfg < 0) throw new SamplingValidationError(`cfg must be a finite number >= 0, got ${o.cfg}`);
  checkStep('startStep', o.startStep);
  checkStep('endStep', o.endStep);
  const shape = o.latent.shape;
  if (shape.length !== 4 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new SamplingValidationError(`latent shape must be [B, C, H, W] with positive sizes, got [${shape.join(', ')}]`);
  }
  if (o.latent.data.length !== numel(shape)) {
    throw new SamplingValidationError(`latent has ${o.latent.data.length} values, shape [${shape.join(', ')}] needs ${numel(shape)}`);
  }
  if (o.noise instanceof Float32Array && o.noise.length !== numel(shape)) {
    throw new SamplingValidationError(`noise has ${o.noise.length} values, the latent needs ${numel(shape)}`);
  }
}

/** KSampler.sample's step window on a schedule; null means "nothing to run". */
export function applyStepWindow(
  sigmas: Float32Array,
  startStep: number | undefined,
  endStep: number | undefined,
  forceFullDenoise: boolean,
): Float32Array | null {
  let s = sigmas;
  if (endStep !== undefined && endStep < s.length - 1) {
    s = s.slice(0, endStep + 1);
    if (forceFullDenoise) s[s.length - 1] = 0;
  }
  if (startStep !== undefined) {
    if (startStep < s.length - 1) s = s.slice(startStep);
    else return null;
  }
  return s;
}

export async function sample(options: SampleOptions): Promise<Latent> {
  validate(options);
  const { modelSampling: ms, latent, signal } = options;
  const shape: Shape4 = [...latent.shape];
  const n = numel(shape);

  const fullSigmas =
    options.sigmas ?? scheduleSigmas(ms, options.scheduler, options.steps, { denoise: options.denoise ?? 1, sampler: options.sampler });
  const sigmas = applyStepWindow(fullSigmas, options.startStep, options.endStep, !(options.returnWithLeftoverNoise ?? false));
  // ComfyUI hands back the input latent untouched when the window is empty.
  if (!sigmas) return { data: Float32Array.from(latent.data), shape };

  let noise: Float32Array;
  if (options.addNoise === false) noise = new Float32Array(n);
  else if (options.noise instanceof Float32Array) noise = options.noise;
  else noise = (options.noise ?? randnLike)(options.seed, shape);
  if (noise.length !== n) throw new SamplingValidationError(`noise function returned ${noise.length} values, the latent needs ${n}`);

  // An all-zero latent (txt2img) is not shifted/scaled: ComfyUI keeps it as is.
  const isEmpty = latent.data.every((v) => v === 0);
  const latentIn = isEmpty ? latent.data : processLatentIn(ms.latentFormat, latent.data);
  const x0 = ms.noiseScaling(sigmas[0]!, noise, latentIn, ms.isMaxDenoise(sigmas[0]!));

  const denoiseMask = options.noiseMask ? prepareDenoiseMask(options.noiseMask, shape) : undefined;
  const cfgDenoiser = makeGuidedDenoiser({
    model: options.model,
    positive: options.positive,
    negative: options.negative,
    cfg: options.cfg,
    modelSampling: ms,
    shape,
    signal,
    onPredictions: options.onPredictions,
    concat: options.concatChannels
      ? inpaintConcat({ channels: options.concatChannels, shape, latentFormat: ms.latentFormat, latent: latentIn, denoiseMask })
      : undefined,
    cfgFunction: options.cfgFunction,
  });
  const denoiser = denoiseMask ? maskedDenoiser(cfgDenoiser, denoiseMask, latentIn, noise) : cfgDenoiser;
  const out = await runSampler({
    sampler: options.sampler,
    samplerOptions: options.samplerOptions,
    denoiser,
    modelSampling: ms,
    sigmas,
    x: x0,
    shape,
    noiseSampler: options.noiseSampler ?? noiseSamplerFor(options.sampler, options.seed, sigmas, shape),
    onStep: options.onStep,
    signal,
  });
  return { data: processLatentOut(ms.latentFormat, out), shape };
}
