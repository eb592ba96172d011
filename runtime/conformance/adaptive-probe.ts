/**
 * Probes how firmly a recorded dpm_adaptive run's step path is determined. dpm_adaptive chooses its own
 * steps from an error norm, and every UNet evaluation maps its sigma to a discrete timestep by argmin, so
 * a float32 rounding difference far below the conformance tolerance can move an evaluation across a
 * timestep boundary and change the rest of the path, including how many callbacks it makes. These
 * helpers rerun a `ksampler-ode` dpm_adaptive run with the real UNet while recording every evaluation,
 * optionally scaling eps by a factor within float32 noise or forcing one sigma's timestep, so that claim can be
 * measured rather than asserted (`scripts/dpm-adaptive-sensitivity.ts`, `test/conformance/samplers.test.ts`).
 */
import { unetEpsModel } from '../pipeline/eps-model.js';
import { ModelSampling } from '../sampling/model-sampling.js';
import { sample } from '../sampling/sample.js';
import type { EpsModel } from '../sampling/types.js';
import type { ConformanceCase } from './case.js';
import { conditioning, runNoise, runSeed, type KSamplerRun } from './kinds/ksampler-runs.js';
import type { CaseModels } from './models.js';

export interface AdaptiveProbe {
  /** Multiplies every UNet eps output by this factor before the sampler sees it (1: unchanged). */
  epsScale?: number;
  /**
   * Uses `timestep` wherever the UNet is evaluated at `sigma` (float32), whatever argmin says. A rejected step
   * re-evaluates the same sigma with the same x, so those evaluations move together, as rounding would move them.
   */
  forceTimestep?: { sigma: number; timestep: number };
}

export interface AdaptiveEvaluation {
  /** The callback this evaluation precedes (0-based). */
  callback: number;
  sigma: number;
  timestep: number;
  /** |log sigma - the nearest midpoint between two adjacent schedule log sigmas|: how far from flipping. */
  boundaryDistance: number;
  /** The timestep on the other side of that nearest boundary. */
  neighbour: number;
}

export interface AdaptiveTrace {
  callbacks: number;
  stepX: Float32Array[];
  evaluations: AdaptiveEvaluation[];
}

/**
 * Eps scalings 1 + k·2^-24 the probes use: under 1e-6 relative, a quarter of what our float32 UNet and torch's
 * already differ by (3.5e-6 on conformance/unet), and far below every tolerance of the case.
 */
export const FLOAT32_NOISE_SCALINGS: readonly number[] = [-16, -8, -3, -1, 1, 3, 8, 16].map((k) => 1 + k * 2 ** -24);

/** A recorded dpm_adaptive run of `c` by name, with the callback count ComfyUI made. */
export function recordedAdaptiveRun(c: ConformanceCase, runName: string): KSamplerRun & { n_callbacks: number } {
  const run = (c.json.params.runs as (KSamplerRun & { n_callbacks: number })[]).find((r) => r.name === runName);
  if (!run) throw new Error(`${c.name}: no run named "${runName}"`);
  if (run.sampler !== 'dpm_adaptive') throw new Error(`${c.name}: run "${runName}" uses ${run.sampler}, not dpm_adaptive`);
  return run;
}

/** Step paths that differ by more than this at some callback went different ways (float32 drift stays near 1e-3). */
export const PATH_PARTED = 1e-2;

/**
 * The boundary between two adjacent discrete timesteps nearest to `sigma` (chosen: `timestep`): its distance in
 * log sigma and the timestep beyond it. The boundaries beside the chosen index are the only candidates.
 */
function nearestBoundary(ms: ModelSampling, sigma: number, timestep: number): { boundaryDistance: number; neighbour: number } {
  const logSigma = Math.fround(Math.log(Math.fround(sigma)));
  const logs = ms.logSigmas;
  const toward = (j: number) => (j >= 0 && j < logs.length ? Math.abs(logSigma - (logs[timestep]! + logs[j]!) / 2) : Infinity);
  const below = toward(timestep - 1);
  const above = toward(timestep + 1);
  return above <= below ? { boundaryDistance: above, neighbour: timestep + 1 } : { boundaryDistance: below, neighbour: timestep - 1 };
}

/** max |a - b| per step, over the steps both paths have. */
export function perStepMaxError(a: ArrayLike<number>[], b: ArrayLike<number>[]): number[] {
  const errors: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    let e = 0;
    for (let k = 0; k < a[i]!.length; k++) e = Math.max(e, Math.abs(a[i]![k]! - b[i]![k]!));
    errors.push(e);
  }
  return errors;
}

/** Remembers the last sigma looked up (the UNet call that follows uses it) and applies a forced timestep. */
class ProbedModelSampling extends ModelSampling {
  lastSigma = NaN;

  constructor(private readonly force: AdaptiveProbe['forceTimestep']) {
    super();
  }

  override sigmaToTimestep(sigma: number): number {
    this.lastSigma = sigma;
    return this.force && Math.fround(sigma) === Math.fround(this.force.sigma) ? this.force.timestep : super.sigmaToTimestep(sigma);
  }
}

/** Reruns one recorded dpm_adaptive KSampler run of `c` (ksampler-ode) under `probe`. */
export async function traceDpmAdaptive(c: ConformanceCase, models: CaseModels, runName: string, probe: AdaptiveProbe = {}): Promise<AdaptiveTrace> {
  const run = recordedAdaptiveRun(c, runName);
  const { noise, shape } = runNoise(c, run);
  const ms = new ProbedModelSampling(probe.forceTimestep);
  const unet = unetEpsModel(models.unet(c));
  const scale = probe.epsScale ?? 1;
  const evaluations: AdaptiveEvaluation[] = [];
  const stepX: Float32Array[] = [];
  const model: EpsModel = async (xIn, shape4, timestep, cond) => {
    evaluations.push({ callback: stepX.length, sigma: ms.lastSigma, timestep, ...nearestBoundary(ms, ms.lastSigma, timestep) });
    const eps = await unet(xIn, shape4, timestep, cond);
    return scale === 1 ? eps : Float32Array.from(eps, (v) => v * scale);
  };
  await sample({
    model,
    modelSampling: ms,
    sampler: run.sampler,
    scheduler: run.scheduler,
    steps: run.steps,
    cfg: run.cfg,
    denoise: run.denoise ?? 1,
    seed: runSeed(run),
    latent: { data: new Float32Array(noise.length), shape },
    positive: conditioning(c, 'cond'),
    negative: conditioning(c, 'uncond'),
    noise,
    // dpm_adaptive multiplies its draws by eta = 0; the case stores none.
    noiseSampler: () => new Float32Array(noise.length),
    onStep: (s) => {
      stepX.push(Float32Array.from(s.x));
    },
  });
  return { callbacks: stepX.length, stepX, evaluations };
}

/** max |ours - ComfyUI's| of step_x per callback, over the callbacks both runs made. */
export function stepXErrors(c: ConformanceCase, runName: string, trace: AdaptiveTrace): number[] {
  const expected = c.expectedTensor(`${runName}/step_x`).data as Float32Array;
  const per = trace.stepX[0]?.length ?? 0;
  const recorded = Array.from({ length: per ? expected.length / per : 0 }, (_, i) => expected.subarray(i * per, (i + 1) * per));
  return perStepMaxError(trace.stepX, recorded);
}
