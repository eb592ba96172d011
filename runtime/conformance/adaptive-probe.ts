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

/** Distance in log sigma from `sigma` to the closest boundary between two adjacent discrete timesteps. */
function timestepBoundaryDistance(ms: ModelSampling, sigma: number): number {
  const logSigma = Math.fround(Math.log(Math.fround(sigma)));
  const logs = ms.logSigmas;
  let best = Infinity;
  for (let i = 0; i + 1 < logs.length; i++) best = Math.min(best, Math.abs(logSigma - (logs[i]! + logs[i + 1]!) / 2));
  return best;
}

/** The timestep on the other side of the boundary nearest to `evaluation` (log sigmas grow with the index). */
export function neighbourTimestep(evaluation: AdaptiveEvaluation): number {
  const logSigma = Math.fround(Math.log(Math.fround(evaluation.sigma)));
  return logSigma > new ModelSampling().logSigmas[evaluation.timestep]! ? evaluation.timestep + 1 : evaluation.timestep - 1;
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
    evaluations.push({ callback: stepX.length, sigma: ms.lastSigma, timestep, boundaryDistance: timestepBoundaryDistance(ms, ms.lastSigma) });
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
  const n = Math.min(trace.callbacks, per ? expected.length / per : 0);
  const errors: number[] = [];
  for (let i = 0; i < n; i++) {
    let e = 0;
    for (let k = 0; k < per; k++) e = Math.max(e, Math.abs(trace.stepX[i]![k]! - expected[i * per + k]!));
    errors.push(e);
  }
  return errors;
}
