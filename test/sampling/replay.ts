/**
 * Replaying recorded ComfyUI runs without a UNet: the model is replaced by the recorded per-step
 * `denoised`, and noise draws by the recorded `noise_calls`, so only the sampler math is under test.
 */
import { expect } from 'vitest';
import type { ModelSampling } from '../../runtime/sampling/model-sampling.js';
import type { CondBatch, Denoiser, EpsModel, NoiseSampler, Shape4, StepInfo } from '../../runtime/sampling/types.js';
import { compareTensor, row, toleranceOf, type ConformanceCase } from './conformance.js';

export interface Recording {
  prefix: string;
  steps: number;
  sigmas: Float32Array;
  stepX: Float32Array;
  stepDenoised: Float32Array;
  samples: Float32Array;
  noiseCalls: Float32Array | null;
  nNoiseCalls: number;
  shape: Shape4;
}

export function loadRecording(c: ConformanceCase, prefix: string): Recording {
  const e = c.expected;
  const sigmas = e.readFloat32(`${prefix}/sigmas`);
  const shape = e.info(`${prefix}/samples`).shape as Shape4;
  const noiseName = `${prefix}/noise_calls`;
  const noiseCalls = e.has(noiseName) ? e.readFloat32(noiseName) : null;
  return {
    prefix,
    steps: sigmas.length - 1,
    sigmas,
    stepX: e.readFloat32(`${prefix}/step_x`),
    stepDenoised: e.readFloat32(`${prefix}/step_denoised`),
    samples: e.readFloat32(`${prefix}/samples`),
    noiseCalls,
    nNoiseCalls: noiseCalls ? e.info(noiseName).shape[0]! : 0,
    shape,
  };
}

/**
 * The denoised value a second evaluation inside step i must have returned for the recorded x_{i+1}
 * (used for heun, whose inner evaluations are not recorded): heun's update
 * x_{i+1} = x_i + (d_i + d2) / 2 * dt pins d2, and denoised2 = x2 - sigma_{i+1} * d2.
 */
function heunSecond(rec: Recording, i: number, x2: Float32Array): Float32Array {
  const xi = row(rec.stepX, rec.steps, i);
  const xn = row(rec.stepX, rec.steps, i + 1);
  const di = row(rec.stepDenoised, rec.steps, i);
  const s = rec.sigmas[i]!;
  const sn = rec.sigmas[i + 1]!;
  const dt = sn - s;
  return x2.map((v, k) => {
    const d = (xi[k]! - di[k]!) / s;
    const d2 = (2 * (xn[k]! - xi[k]!)) / dt - d;
    return v - sn * d2;
  });
}

/** Denoiser returning the recorded prediction for the first call of each step. */
export function replayDenoiser(rec: Recording): Denoiser & { calls: number } {
  let lastStep = -1;
  const fn = (async (x: Float32Array, sigma: number, info: StepInfo) => {
    fn.calls++;
    if (info.step !== lastStep) {
      lastStep = info.step;
      expect(sigma).toBe(rec.sigmas[info.step]);
      return Float32Array.from(row(rec.stepDenoised, rec.steps, info.step));
    }
    expect(sigma).toBe(rec.sigmas[info.step + 1]);
    return heunSecond(rec, info.step, x);
  }) as Denoiser & { calls: number };
  fn.calls = 0;
  return fn;
}

export interface PlannedCall {
  /** Index into the schedule of the sigma this call evaluates at. */
  sigmaIndex: number;
  step: number;
  /** Heun's inner evaluation (not recorded; derived from the next recorded x). */
  second: boolean;
}

/** The model calls a sampler makes: one per step, plus heun's second call at the next sigma. */
export function callPlan(rec: Recording, sampler: string): PlannedCall[] {
  const plan: PlannedCall[] = [];
  for (let i = 0; i < rec.steps; i++) {
    plan.push({ sigmaIndex: i, step: i, second: false });
    if (sampler === 'heun' && rec.sigmas[i + 1] !== 0) plan.push({ sigmaIndex: i + 1, step: i, second: true });
  }
  return plan;
}

/** Eps model whose CFG result is the recorded prediction: every half returns the eps that yields it. */
export function replayEpsModel(
  rec: Recording,
  ms: ModelSampling,
  plan: PlannedCall[],
  check?: (cond: CondBatch, shape: Shape4, call: number) => void,
): EpsModel & { calls: number } {
  const fn = (async (xIn: Float32Array, shape: Shape4, timestep: number, cond: CondBatch) => {
    const p = plan[fn.calls];
    if (!p) throw new Error(`${rec.prefix}: more model calls than planned (${plan.length})`);
    check?.(cond, shape, fn.calls);
    fn.calls++;
    const sigma = rec.sigmas[p.sigmaIndex]!;
    expect(timestep).toBe(ms.sigmaToTimestep(sigma));
    const half = xIn.length / cond.condOrUncond.length;
    const up = Math.sqrt(sigma * sigma + 1);
    const x = xIn.subarray(0, half).map((v) => v * up);
    const denoised = p.second ? heunSecond(rec, p.step, x) : row(rec.stepDenoised, rec.steps, p.step);
    const eps = x.map((v, k) => (v - denoised[k]!) / sigma);
    const out = new Float32Array(xIn.length);
    for (let i = 0; i < cond.condOrUncond.length; i++) out.set(eps, i * half);
    return out;
  }) as EpsModel & { calls: number };
  fn.calls = 0;
  return fn;
}

export function replayNoise(rec: Recording): NoiseSampler & { calls: number } {
  const fn = ((_s: number, _n: number) => {
    if (!rec.noiseCalls || fn.calls >= rec.nNoiseCalls) throw new Error(`${rec.prefix}: more noise draws than recorded (${rec.nNoiseCalls})`);
    return Float32Array.from(row(rec.noiseCalls, rec.nNoiseCalls, fn.calls++));
  }) as NoiseSampler & { calls: number };
  fn.calls = 0;
  return fn;
}

/** Asserts per-step x (as reported by onStep) and the final latent against the recording. */
export function expectTrace(c: ConformanceCase, rec: Recording, stepXs: Float32Array[], samples: Float32Array): void {
  expect(stepXs.length).toBe(rec.steps);
  stepXs.forEach((x, i) => {
    const msg = compareTensor(x, row(rec.stepX, rec.steps, i), toleranceOf(c, `${rec.prefix}/step_x`));
    expect(msg, `${rec.prefix} step_x[${i}]`).toBeNull();
  });
  const msg = compareTensor(samples, rec.samples, toleranceOf(c, `${rec.prefix}/samples`));
  expect(msg, `${rec.prefix} samples`).toBeNull();
}
