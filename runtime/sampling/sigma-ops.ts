/**
 * The custom-sampling schedule nodes of ComfyUI as pure functions over float32 sigma lists: the extra
 * k-diffusion schedules (polyexponential, VP, Laplace), SDTurbo's fixed timesteps, BasicScheduler's
 * denoise slicing, and the split / flip helpers. Math follows the float32 tensor ops ComfyUI uses.
 */
import { f32, linspaceF32 } from './f32.js';
import type { ModelSampling } from './model-sampling.js';
import { calculateSigmas } from './schedulers.js';
import { SamplingValidationError } from './types.js';

function withZero(values: ArrayLike<number>): Float32Array {
  const out = new Float32Array(values.length + 1);
  for (let i = 0; i < values.length; i++) out[i] = values[i]!;
  return out;
}

/** Polynomial in log sigma (rho = 1 is the exponential schedule). */
export function polyexponentialSigmas(steps: number, sigmaMin: number, sigmaMax: number, rho = 1): Float32Array {
  const ramp = linspaceF32(1, 0, steps);
  const span = f32(Math.log(sigmaMax) - Math.log(sigmaMin));
  const lmin = f32(Math.log(sigmaMin));
  return withZero(Array.from(ramp, (r) => f32(Math.exp(f32(f32(f32(f32(r) ** rho) * span) + lmin)))));
}

/** Continuous VP schedule sqrt(expm1(beta_d t^2 / 2 + beta_min t)), t from 1 down to eps_s. */
export function vpSigmas(steps: number, betaD = 19.9, betaMin = 0.1, epsS = 1e-3): Float32Array {
  const t = linspaceF32(1, epsS, steps);
  return withZero(
    Array.from(t, (v) => {
      const a = f32(f32(f32(betaD) * f32(v * v)) / 2);
      return f32(Math.sqrt(f32(Math.expm1(f32(a + f32(f32(betaMin) * v))))));
    }),
  );
}

/** Laplace schedule (Tiankai et al. 2024); like ComfyUI it has no trailing zero. */
export function laplaceSigmas(steps: number, sigmaMin: number, sigmaMax: number, mu = 0, beta = 0.5): Float32Array {
  const x = linspaceF32(0, 1, steps);
  const lo = f32(sigmaMin);
  const hi = f32(sigmaMax);
  return Float32Array.from(x, (v) => {
    const d = f32(0.5 - v);
    const sign = d > 0 ? 1 : d < 0 ? -1 : 0;
    const inner = f32(f32(1 - f32(2 * Math.abs(d))) + f32(1e-5));
    const lmb = f32(f32(mu) - f32(f32(f32(beta) * sign) * f32(Math.log(inner))));
    return Math.min(Math.max(f32(Math.exp(lmb)), lo), hi);
  });
}

/** SDTurboScheduler: timesteps 999, 899, ... starting 10 - int(10 * denoise) places in. */
export function sdTurboSigmas(ms: ModelSampling, steps: number, denoise: number): Float32Array {
  const start = 10 - Math.trunc(10 * denoise);
  const ts: number[] = [];
  for (let i = start; i < Math.min(start + steps, 10); i++) ts.push(999 - 100 * i);
  return withZero(ts.map((t) => ms.timestepToSigma(t)));
}

/**
 * BasicScheduler: the named schedule for int(steps / denoise) steps, keeping the last steps + 1
 * sigmas even at denoise 1 (so ddim_uniform's extra steps are cut here, unlike in KSampler).
 */
export function basicSchedulerSigmas(ms: ModelSampling, scheduler: string, steps: number, denoise: number): Float32Array {
  let total = steps;
  if (denoise < 1) {
    if (denoise <= 0) return new Float32Array(0);
    total = Math.trunc(steps / denoise);
  }
  const sigmas = calculateSigmas(ms, scheduler, total);
  return sigmas.slice(Math.max(sigmas.length - (steps + 1), 0));
}

/** SplitSigmas: [0, step] and [step, end] (sharing the sigma at `step`). */
export function splitSigmas(sigmas: Float32Array, step: number): [Float32Array, Float32Array] {
  if (!Number.isInteger(step) || step < 0) throw new SamplingValidationError(`SplitSigmas step must be an integer >= 0, got ${step}`);
  return [sigmas.slice(0, step + 1), sigmas.slice(Math.min(step, sigmas.length))];
}

/** Python's slice start for a negative index -k (k may exceed the length). */
function fromEnd(len: number, k: number): number {
  return Math.max(len - k, 0);
}

/** SplitSigmasDenoise: the last round(steps * denoise) steps go to the low part. */
export function splitSigmasDenoise(sigmas: Float32Array, denoise: number): [Float32Array, Float32Array] {
  const steps = Math.max(sigmas.length - 1, 0);
  const totalSteps = pyRound(steps * denoise);
  // sigmas[:-0] is empty in Python.
  const high = totalSteps === 0 ? new Float32Array(0) : sigmas.slice(0, sigmas.length - totalSteps);
  const low = sigmas.slice(fromEnd(sigmas.length, totalSteps + 1));
  return [high, low];
}

/** Python round(): half to even. */
function pyRound(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** FlipSigmas: reversed, a leading 0 becomes 0.0001 (for "unsampling" back towards noise). */
export function flipSigmas(sigmas: Float32Array): Float32Array {
  if (sigmas.length === 0) return sigmas;
  const out = Float32Array.from(sigmas).reverse();
  if (out[0] === 0) out[0] = 0.0001;
  return out;
}
