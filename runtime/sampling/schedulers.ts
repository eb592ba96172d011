/**
 * ComfyUI's sigma schedulers (comfy/samplers.py + k-diffusion), by ComfyUI name. Every schedule ends in
 * 0 and is returned as float32, because ComfyUI hands samplers a FloatTensor; intermediate math is done
 * in the precision ComfyUI uses (float32 tensors for normal / karras / exponential, float64 python
 * floats for the index-based ones).
 */
import { betaPpf } from './beta-dist.js';
import { f32, linspaceF32 } from './f32.js';
import type { ModelSampling } from './model-sampling.js';
import { SamplingValidationError } from './types.js';

export type SchedulerFn = (ms: ModelSampling, steps: number) => Float32Array;

function withZero(values: ArrayLike<number>): Float32Array {
  const out = new Float32Array(values.length + 1);
  for (let i = 0; i < values.length; i++) out[i] = values[i]!;
  return out;
}

/** Uniform in timestep between t(sigma_max) and t(sigma_min); `sgm` drops the final point instead. */
function normalScheduler(ms: ModelSampling, steps: number, sgm = false): Float32Array {
  const start = ms.sigmaToTimestep(ms.sigmaMax);
  const end = ms.sigmaToTimestep(ms.sigmaMin);
  let timesteps: Float32Array;
  let appendZero = true;
  if (sgm) {
    timesteps = linspaceF32(start, end, steps + 1).subarray(0, steps);
  } else {
    // Zero-terminal-SNR schedules already end at sigma 0: sample one more point instead of appending.
    let n = steps;
    if (Math.abs(ms.timestepToSigma(end)) <= 1e-5) {
      n += 1;
      appendZero = false;
    }
    timesteps = linspaceF32(start, end, n);
  }
  const sigmas = Array.from(timesteps, (t) => ms.timestepToSigma(t));
  return appendZero ? withZero(sigmas) : Float32Array.from(sigmas);
}

/** Karras et al. (2022) rho = 7 ramp between sigma_min and sigma_max (float32 tensor math). */
export function karrasSigmas(steps: number, sigmaMin: number, sigmaMax: number, rho = 7): Float32Array {
  const ramp = linspaceF32(0, 1, steps);
  const minInv = sigmaMin ** (1 / rho);
  const maxInv = sigmaMax ** (1 / rho);
  const span = f32(minInv - maxInv);
  const base = f32(maxInv);
  return withZero(Array.from(ramp, (r) => f32(f32(base + f32(r * span)) ** rho)));
}

/** Evenly spaced in log sigma. */
export function exponentialSigmas(steps: number, sigmaMin: number, sigmaMax: number): Float32Array {
  const logs = linspaceF32(Math.log(sigmaMax), Math.log(sigmaMin), steps);
  return withZero(Array.from(logs, (l) => f32(Math.exp(l))));
}

/** Every (1000 / steps)-th training sigma, counted from the top. */
function simpleScheduler(ms: ModelSampling, steps: number): Float32Array {
  const n = ms.sigmas.length;
  const stride = n / steps;
  const sigs: number[] = [];
  for (let i = 0; i < steps; i++) sigs.push(ms.sigmas[n - 1 - Math.trunc(i * stride)]!);
  return withZero(sigs);
}

/**
 * DDIM's uniform timesteps: indices 1, 1 + k, 1 + 2k, ... with k = 1000 // steps, reversed. Like
 * ComfyUI this can yield more than `steps` sigmas when 1000 is not a multiple of steps.
 */
function ddimUniformScheduler(ms: ModelSampling, steps: number): Float32Array {
  const n = ms.sigmas.length;
  let x = 1;
  let count = steps;
  const sigs: number[] = [];
  const zeroTerminal = Math.abs(ms.sigmas[x]!) <= 1e-5;
  if (zeroTerminal) count += 1;
  else sigs.push(0);
  const stride = Math.max(Math.floor(n / count), 1);
  while (x < n) {
    sigs.push(ms.sigmas[x]!);
    x += stride;
  }
  sigs.reverse();
  return Float32Array.from(sigs);
}

/** numpy.rint: round half to even. */
function rint(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Beta(0.6, 0.6) quantiles of the timestep axis (Lee et al. 2024); repeated timesteps are dropped. */
export function betaScheduler(ms: ModelSampling, steps: number, alpha = 0.6, beta = 0.6): Float32Array {
  const total = ms.sigmas.length - 1;
  const sigs: number[] = [];
  let last = -1;
  const stride = 1 / steps;
  for (let i = 0; i < steps; i++) {
    const q = 1 - i * stride;
    const t = rint(betaPpf(q, alpha, beta) * total);
    if (t !== last) sigs.push(ms.sigmas[t]!);
    last = t;
  }
  return withZero(sigs);
}

/**
 * Mochi's linear-then-quadratic schedule on a 0..1 scale, times sigma_max (a float32 tensor product
 * in ComfyUI). One step is [sigma_max, 0].
 */
function linearQuadraticScheduler(ms: ModelSampling, steps: number, thresholdNoise = 0.025): Float32Array {
  let sched: number[];
  if (steps === 1) sched = [1, 0];
  else {
    const linearSteps = Math.floor(steps / 2);
    const lin: number[] = [];
    for (let i = 0; i < linearSteps; i++) lin.push((i * thresholdNoise) / linearSteps);
    const diff = linearSteps - thresholdNoise * steps;
    const quadSteps = steps - linearSteps;
    const quadCoef = diff / (linearSteps * quadSteps ** 2);
    const linCoef = thresholdNoise / linearSteps - (2 * diff) / quadSteps ** 2;
    const c = quadCoef * linearSteps ** 2;
    for (let i = linearSteps; i < steps; i++) lin.push(quadCoef * i * i + linCoef * i + c);
    lin.push(1);
    sched = lin.map((v) => 1 - v);
  }
  const max = f32(ms.sigmaMax);
  return Float32Array.from(sched, (v) => f32(f32(v) * max));
}

/**
 * KL-optimal schedule (Gao et al.): tan of a linear ramp between atan(sigma_max) and atan(sigma_min),
 * float32 tensor math. With one step ComfyUI divides by zero and yields [nan, 0]; so do we.
 */
export function klOptimalSigmas(steps: number, sigmaMin: number, sigmaMax: number): Float32Array {
  const out = new Float32Array(steps + 1);
  const aMin = f32(Math.atan(sigmaMin));
  const aMax = f32(Math.atan(sigmaMax));
  for (let i = 0; i < steps; i++) {
    const t = f32(i / (steps - 1));
    out[i] = f32(Math.tan(f32(f32(t * aMin) + f32(f32(1 - t) * aMax))));
  }
  return out;
}

export const SCHEDULERS: Readonly<Record<string, SchedulerFn>> = {
  simple: simpleScheduler,
  sgm_uniform: (ms, steps) => normalScheduler(ms, steps, true),
  karras: (ms, steps) => karrasSigmas(steps, ms.sigmaMin, ms.sigmaMax),
  exponential: (ms, steps) => exponentialSigmas(steps, ms.sigmaMin, ms.sigmaMax),
  ddim_uniform: ddimUniformScheduler,
  beta: betaScheduler,
  normal: (ms, steps) => normalScheduler(ms, steps, false),
  linear_quadratic: linearQuadraticScheduler,
  kl_optimal: (ms, steps) => klOptimalSigmas(steps, ms.sigmaMin, ms.sigmaMax),
};

export const SCHEDULER_NAMES: readonly string[] = Object.keys(SCHEDULERS);

export function getScheduler(name: string): SchedulerFn {
  const fn = Object.hasOwn(SCHEDULERS, name) ? SCHEDULERS[name] : undefined;
  if (!fn) {
    throw new SamplingValidationError(`unknown scheduler "${name}"; valid schedulers: ${SCHEDULER_NAMES.join(', ')}`);
  }
  return fn;
}

/**
 * ComfyUI samplers whose schedules get one extra step with the second-to-last sigma removed: their
 * second-order step towards the smallest sigma would otherwise be wasted on a tiny interval.
 */
export const DISCARD_PENULTIMATE_SIGMA_SAMPLERS: ReadonlySet<string> = new Set(['dpm_2', 'dpm_2_ancestral', 'uni_pc', 'uni_pc_bh2']);

/** KSampler.calculate_sigmas: the named schedule, adjusted for the sampler. */
export function calculateSigmas(ms: ModelSampling, scheduler: string, steps: number, sampler?: string): Float32Array {
  const fn = getScheduler(scheduler);
  if (!Number.isInteger(steps) || steps < 1) throw new SamplingValidationError(`steps must be an integer >= 1, got ${steps}`);
  const discard = sampler !== undefined && DISCARD_PENULTIMATE_SIGMA_SAMPLERS.has(sampler);
  const sigmas = fn(ms, discard ? steps + 1 : steps);
  if (!discard) return sigmas;
  const out = new Float32Array(sigmas.length - 1);
  out.set(sigmas.subarray(0, sigmas.length - 2));
  out[out.length - 1] = sigmas[sigmas.length - 1]!;
  return out;
}

/**
 * KSampler.set_steps: with denoise < 1 ComfyUI builds the schedule for int(steps / denoise) steps and
 * keeps the last steps + 1 sigmas, so img2img starts part-way down the full schedule.
 */
export function scheduleSigmas(
  ms: ModelSampling,
  scheduler: string,
  steps: number,
  options: { denoise?: number; sampler?: string } = {},
): Float32Array {
  const denoise = options.denoise ?? 1;
  if (!(denoise > 0 && denoise <= 1)) throw new SamplingValidationError(`denoise must be in (0, 1], got ${denoise}`);
  if (denoise > 0.9999) return calculateSigmas(ms, scheduler, steps, options.sampler);
  const fullSteps = Math.trunc(steps / denoise);
  const sigmas = calculateSigmas(ms, scheduler, fullSteps, options.sampler);
  return sigmas.slice(Math.max(sigmas.length - (steps + 1), 0));
}
