import { unetEpsModel } from '../../pipeline/eps-model.js';
import { ModelSampling } from '../../sampling/model-sampling.js';
import { noiseSamplerFor, sample } from '../../sampling/sample.js';
import { BROWNIAN_SAMPLERS } from '../../sampling/samplers/index.js';
import { scheduleSigmas } from '../../sampling/schedulers.js';
import { randnLike } from '../../sampling/torch-rng.js';
import type { CfgFunction } from '../../sampling/guidance.js';
import type { Conditioning, EpsModel, Latent, NoiseSampler, Shape4 } from '../../sampling/types.js';
import type { ConformanceCase } from '../case.js';
import type { CaseModels } from '../models.js';
import { stack } from './sampling.js';
import type { CaseKind } from './types.js';

export interface KSamplerRun {
  name: string;
  sampler: string;
  scheduler: string;
  steps: number;
  cfg: number;
  denoise?: number;
  seed: number;
  seed_str?: string;
  latent_shape?: number[];
  noise_input?: string;
}

/** A run's seed; JSON loses precision above 2^53, so the string form wins. */
export function runSeed(run: { seed: number; seed_str?: string }): number | bigint {
  const big = run.seed_str !== undefined ? BigInt(run.seed_str) : BigInt(run.seed);
  return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
}

export function conditioning(c: ConformanceCase, name: string): Conditioning {
  const t = c.input(name);
  return { context: t.data as Float32Array, contextShape: [...t.dims] as [number, number, number] };
}

/** The run's initial noise input, checked against our own torch generator. */
export function runNoise(c: ConformanceCase, run: KSamplerRun): { noise: Float32Array; shape: Shape4 } {
  const name = run.noise_input ?? `${run.name}/noise`;
  const t = c.input(name);
  const shape = [...t.dims] as Shape4;
  const own = randnLike(runSeed(run), shape);
  if (own.some((v, i) => v !== t.data[i])) throw new Error(`${c.name}: our torch RNG differs from "${name}" for seed ${run.seed_str ?? run.seed}`);
  return { noise: t.data as Float32Array, shape };
}

/** Shown beside a failing dpm_adaptive trajectory, which float32 rounding decides (README, "Samplers"). */
const ADAPTIVE_NOTE = 'dpm_adaptive\'s step path turns on float32 rounding at timestep boundaries: npx tsx scripts/dpm-adaptive-sensitivity.ts';

export interface RunExtras {
  modelSampling?: ModelSampling;
  model?: EpsModel;
  cfgFunction?: CfgFunction;
  latent?: Latent;
}

/**
 * One recorded KSampler run through the real UNet, with ComfyUI's own noise (default sampler or
 * Brownian tree) generated from the seed; checks sigmas, callbacks, noise draws and the samples.
 */
export async function checkKSamplerRun(c: ConformanceCase, models: CaseModels, run: KSamplerRun, io: { positive: Conditioning; negative: Conditioning }, extras: RunExtras = {}): Promise<void> {
  const ms = extras.modelSampling ?? new ModelSampling();
  const { noise, shape } = runNoise(c, run);
  const seed = runSeed(run);
  const denoise = run.denoise ?? 1;
  const p = run.name;
  const sigmas = scheduleSigmas(ms, run.scheduler, run.steps, { denoise, sampler: run.sampler });
  if (c.hasExpected(`${p}/sigmas`)) c.check(`${p}/sigmas`, sigmas);
  const brownian = BROWNIAN_SAMPLERS.has(run.sampler);
  if (brownian && c.hasExpected(`${p}/tree_t0_t1`)) {
    const pos = Array.from(sigmas).filter((s) => s > 0);
    c.check(`${p}/tree_t0_t1`, [Math.min(...pos), Math.max(...sigmas)], { atol: 0, rtol: 0 });
  }
  const own = noiseSamplerFor(run.sampler, seed, sigmas, shape);
  const draws: Float32Array[] = [];
  const queries: number[] = [];
  const noiseSampler: NoiseSampler = (s, sn) => {
    const d = own(s, sn);
    draws.push(Float32Array.from(d));
    queries.push(s, sn);
    return d;
  };
  const xs: Float32Array[] = [];
  const ds: Float32Array[] = [];
  const latent = extras.latent ?? { data: new Float32Array(noise.length), shape };
  const out = await sample({
    model: extras.model ?? unetEpsModel(models.unet(c)),
    modelSampling: ms,
    sampler: run.sampler,
    scheduler: run.scheduler,
    steps: run.steps,
    cfg: run.cfg,
    denoise,
    seed,
    latent,
    positive: io.positive,
    negative: io.negative,
    noise,
    noiseSampler,
    cfgFunction: extras.cfgFunction,
    onStep: (s) => {
      xs.push(Float32Array.from(s.x));
      ds.push(Float32Array.from(s.denoised));
    },
  });
  for (const [tensor, steps] of [['step_x', xs], ['step_denoised', ds]] as const) {
    if (!c.hasExpected(`${p}/${tensor}`)) continue;
    const r = c.check(`${p}/${tensor}`, stack(steps));
    if (!r.pass && run.sampler === 'dpm_adaptive') {
      const made = c.expectedTensor(`${p}/${tensor}`).dims[0];
      const counts = steps.length === made ? '' : `${steps.length} callbacks where ComfyUI made ${made}; `;
      r.note = `${counts}${ADAPTIVE_NOTE}`;
    }
  }
  if (c.hasExpected(`${p}/noise_calls`)) c.check(`${p}/noise_calls`, stack(draws));
  if (c.hasExpected(`${p}/noise_queries`)) c.check(`${p}/noise_queries`, queries, { atol: 0, rtol: 0 });
  if (c.hasExpected(`${p}/noise_W`)) {
    // The raw tree increment: undo ComfyUI's sign and division by sqrt(|dt|).
    const per = noise.length;
    const w = stack(draws);
    for (let j = 0; j < draws.length; j++) {
      const s = Math.fround(queries[2 * j]!);
      const sn = Math.fround(queries[2 * j + 1]!);
      const scale = Math.fround(Math.sqrt(Math.fround(Math.abs(Math.fround(sn - s)))));
      const sign = s < sn ? 1 : -1;
      for (let i = 0; i < per; i++) w[j * per + i] = Math.fround(w[j * per + i]! * scale) * sign;
    }
    c.check(`${p}/noise_W`, w);
  }
  c.check(`${p}/samples`, out.data);
}

/** `ksampler-ode`, `ksampler-ancestral`, `ksampler-brownian`, `samplers-sde`: KSampler runs with noise from the seed. */
export const ksamplerRunsKind: CaseKind = {
  name: 'ksampler-runs',
  matches: (c) => ['ksampler-ode', 'ksampler-ancestral', 'ksampler-brownian', 'samplers-sde'].includes(c.name),
  async run(c, models) {
    const io = { positive: conditioning(c, 'cond'), negative: conditioning(c, 'uncond') };
    for (const run of c.json.params.runs as KSamplerRun[]) await checkKSamplerRun(c, models, run, io);
  },
};
