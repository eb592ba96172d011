/**
 * What every sampler gets, and the few tensor kernels they share. Samplers follow k-diffusion's
 * structure (one denoiser call per step plus optional inner evaluations, callback after the first
 * call of a step) so step-by-step traces line up with ComfyUI's.
 */
import type { ModelSampling } from '../model-sampling.js';
import type { Denoiser, NoiseSampler, StepInfo } from '../types.js';

export interface SamplerStep {
  /** Step index i (sigmas[i] -> sigmas[i + 1]). */
  i: number;
  /** x at the start of the step (sigma space). */
  x: Float32Array;
  sigma: number;
  sigmaHat: number;
  denoised: Float32Array;
}

export interface SamplerContext {
  denoiser: Denoiser;
  /** Starting x, already noise-scaled; samplers never write into it. */
  x: Float32Array;
  /** Float32 schedule ending (normally) in 0. */
  sigmas: Float32Array;
  noiseSampler: NoiseSampler;
  modelSampling: ModelSampling;
  callback?: (step: SamplerStep) => void | Promise<void>;
  /**
   * The guided prediction together with the unguided (negative) one, ComfyUI's post-CFG hook with the
   * cfg = 1 shortcut disabled; used by the *_cfg_pp samplers. Absent: uncond = denoised.
   */
  denoiserWithUncond?: UncondDenoiser;
}

export type UncondDenoiser = (x: Float32Array, sigma: number, step: StepInfo) => Promise<{ denoised: Float32Array; uncond: Float32Array }>;

/** Evaluates the guided and the unguided prediction for step i. */
export async function evalWithUncond(ctx: SamplerContext, x: Float32Array, sigma: number, i: number): Promise<{ denoised: Float32Array; uncond: Float32Array }> {
  if (ctx.denoiserWithUncond) return ctx.denoiserWithUncond(x, sigma, stepInfo(ctx, i));
  const denoised = await ctx.denoiser(x, sigma, stepInfo(ctx, i));
  return { denoised, uncond: denoised };
}

/** Knobs with k-diffusion's defaults; each sampler reads the ones it has. */
export interface SamplerOptions {
  /** Ancestral / SDE noise amount (default 1). */
  eta?: number;
  /** Noise multiplier (default 1). */
  sNoise?: number;
  /** dpmpp_sde intermediate step ratio (default 1/2). */
  r?: number;
  /** dpmpp_2m_sde second-order correction (default 'midpoint'). */
  solverType?: 'midpoint' | 'heun';
}

export type SamplerFn = (ctx: SamplerContext, options?: SamplerOptions) => Promise<Float32Array>;

export function stepInfo(ctx: SamplerContext, i: number): StepInfo {
  return { step: i, totalSteps: ctx.sigmas.length - 1, sigmas: ctx.sigmas };
}

/** Evaluates the denoiser for step i. */
export function evalModel(ctx: SamplerContext, x: Float32Array, sigma: number, i: number): Promise<Float32Array> {
  return ctx.denoiser(x, sigma, stepInfo(ctx, i));
}

export async function report(ctx: SamplerContext, step: SamplerStep): Promise<void> {
  if (ctx.callback) await ctx.callback(step);
}

/** Karras ODE derivative d = (x - denoised) / sigma. */
export function toD(x: Float32Array, sigma: number, denoised: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = (x[i]! - denoised[i]!) / sigma;
  return out;
}

/** a * x + b * y (+ c * z), elementwise into a new array. */
export function lin(a: number, x: Float32Array, b: number, y: Float32Array, c = 0, z?: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  if (z && c !== 0) {
    for (let i = 0; i < x.length; i++) out[i] = a * x[i]! + b * y[i]! + c * z[i]!;
  } else {
    for (let i = 0; i < x.length; i++) out[i] = a * x[i]! + b * y[i]!;
  }
  return out;
}

/** x += s * y in place; returns x. */
export function addScaled(x: Float32Array, s: number, y: Float32Array): Float32Array {
  for (let i = 0; i < x.length; i++) x[i] = x[i]! + s * y[i]!;
  return x;
}

/**
 * Ancestral split of a step sigma_from -> sigma_to into a deterministic step to sigmaDown and fresh
 * noise of std sigmaUp, with sigmaDown^2 + sigmaUp^2 = sigma_to^2.
 */
export function ancestralStep(sigmaFrom: number, sigmaTo: number, eta = 1): { sigmaDown: number; sigmaUp: number } {
  if (!eta) return { sigmaDown: sigmaTo, sigmaUp: 0 };
  const sigmaUp = Math.min(sigmaTo, eta * Math.sqrt((sigmaTo ** 2 * (sigmaFrom ** 2 - sigmaTo ** 2)) / sigmaFrom ** 2));
  const sigmaDown = Math.sqrt(sigmaTo ** 2 - sigmaUp ** 2);
  return { sigmaDown, sigmaUp };
}
