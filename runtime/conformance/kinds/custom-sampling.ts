import { unetEpsModel } from '../../pipeline/eps-model.js';
import { cfgGuider, disableNoise, dualCfgGuider, randomNoise, sampleCustom, type Guider, type NoiseSource } from '../../sampling/custom-sampling.js';
import { ModelSampling } from '../../sampling/model-sampling.js';
import { basicSchedulerSigmas, flipSigmas, sdTurboSigmas, splitSigmas } from '../../sampling/sigma-ops.js';
import type { Latent, Shape4 } from '../../sampling/types.js';
import type { ConformanceCase } from '../case.js';
import type { CaseModels } from '../models.js';
import { conditioning, runSeed } from './ksampler-runs.js';
import { stack } from './sampling.js';
import type { CaseKind } from './types.js';

interface CustomRun {
  name: string;
  graph: string;
  description: string;
  batch: number;
  seed: number;
  seed_str?: string;
  n_callbacks: number;
}

function need<T>(v: T | undefined | null, what: string, run: CustomRun): T {
  if (v === undefined || v === null) throw new Error(`custom-sampling: cannot read ${what} of run "${run.name}" from "${run.description}"`);
  return v;
}

/** BasicScheduler('<name>', <steps>[, [denoise ]<d>]) in a graph description. */
function basicScheduler(run: CustomRun): { scheduler: string; steps: number; denoise: number } | null {
  const m = /BasicScheduler\('(\w+)', (\d+)(?:, (?:denoise )?([\d.]+))?\)/.exec(run.description);
  return m ? { scheduler: m[1]!, steps: Number(m[2]), denoise: m[3] ? Number(m[3]) : 1 } : null;
}

/** `custom-sampling`: SamplerCustom / SamplerCustomAdvanced graphs with the custom-sampling nodes. */
export const customSamplingKind: CaseKind = {
  name: 'custom-sampling',
  matches: (c) => c.name === 'custom-sampling',
  async run(c, models) {
    const p = c.json.params;
    const baseShape = p.latent_shape as number[];
    const cfg = Number(p.cfg ?? 7);
    const ms = new ModelSampling();
    const model = unetEpsModel(models.unet(c));
    const m = { modelFor: () => model, modelSampling: ms };
    const cond = conditioning(c, 'cond');
    const uncond = conditioning(c, 'uncond');
    const outputs = new Map<string, Latent>();

    const latentFor = (run: CustomRun, useInput: boolean, from?: string): Latent => {
      const shape = [run.batch, ...baseShape.slice(1)] as Shape4;
      const n = shape.reduce((a, b) => a * b, 1);
      if (from) return need(outputs.get(from), `the output of ${from}`, run);
      if (!useInput) return { data: new Float32Array(n), shape };
      const img = c.input('latent_image').data as Float32Array;
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = img[i % img.length]!;
      return { data, shape };
    };

    const exec = async (run: CustomRun, noise: NoiseSource, guider: Guider, sampler: string, sigmas: Float32Array, latent: Latent, seed?: number | bigint) => {
      if (c.hasExpected(`${run.name}/sigmas`)) c.check(`${run.name}/sigmas`, sigmas);
      const xs: Float32Array[] = [];
      const ds: Float32Array[] = [];
      const draws: Float32Array[] = [];
      const queries: number[] = [];
      if (c.hasExpected(`${run.name}/tree_t0_t1`)) {
        const pos = Array.from(sigmas).filter((s) => s > 0);
        c.check(`${run.name}/tree_t0_t1`, [Math.min(...pos), Math.max(...sigmas)], { atol: 0, rtol: 0 });
      }
      const r = await sampleCustom({
        noise,
        guider,
        sampler: { name: sampler },
        sigmas,
        latent,
        seed,
        onNoise: (s, sn, d) => {
          draws.push(Float32Array.from(d));
          queries.push(s, sn);
        },
        onStep: (s) => {
          xs.push(Float32Array.from(s.x));
          ds.push(Float32Array.from(s.denoised));
        },
      });
      if (c.hasExpected(`${run.name}/step_x`)) c.check(`${run.name}/step_x`, stack(xs));
      c.check(`${run.name}/step_denoised`, stack(ds));
      if (c.hasExpected(`${run.name}/noise_calls`)) c.check(`${run.name}/noise_calls`, stack(draws));
      if (c.hasExpected(`${run.name}/noise_queries`)) c.check(`${run.name}/noise_queries`, queries, { atol: 0, rtol: 0 });
      c.check(`${run.name}/samples`, r.samples.data);
      c.check(`${run.name}/denoised_output`, r.denoised.data);
      outputs.set(`${run.name}/samples`, r.samples);
    };

    for (const run of p.runs as CustomRun[]) {
      const seed = runSeed(run);
      const parts = run.name.split('/');
      if (parts[0] === 'advanced') {
        const sched = need(basicScheduler(run), 'BasicScheduler', run);
        const sigmas = basicSchedulerSigmas(ms, sched.scheduler, sched.steps, sched.denoise);
        await exec(run, randomNoise(seed), cfgGuider(m, cond, uncond, cfg), parts[1]!, sigmas, latentFor(run, /latent_image/.test(run.description)));
      } else if (parts[0] === 'custom') {
        const sdt = need(/SDTurboScheduler\((\d+), ([\d.]+)\)/.exec(run.description), 'SDTurboScheduler', run);
        const sampler = need(/KSamplerSelect\('(\w+)'\)/.exec(run.description), 'KSamplerSelect', run)[1]!;
        const runCfg = Number(need(/cfg ([\d.]+)/.exec(run.description), 'cfg', run)[1]);
        const sigmas = sdTurboSigmas(ms, Number(sdt[1]), Number(sdt[2]));
        await exec(run, randomNoise(seed), cfgGuider(m, cond, uncond, runCfg), sampler, sigmas, latentFor(run, /latent_image/.test(run.description)), seed);
      } else if (parts[0] === 'dualcfg') {
        const d = p.dualcfg as { cfg_conds: number; cfg_cond2_negative: number };
        const guider = dualCfgGuider(m, cond, conditioning(c, 'cond2'), uncond, d.cfg_conds, d.cfg_cond2_negative, parts[1] === 'nested' ? 'nested' : 'regular');
        const sched = basicScheduler(run) ?? { scheduler: 'normal', steps: run.n_callbacks, denoise: 1 };
        await exec(run, randomNoise(seed), guider, 'euler', basicSchedulerSigmas(ms, sched.scheduler, sched.steps, sched.denoise), latentFor(run, false));
      } else if (parts[0] === 'split') {
        const sched = need(basicScheduler(run), 'BasicScheduler', run);
        const at = Number(need(/SplitSigmas\(step (\d+)\)/.exec(run.description), 'SplitSigmas', run)[1]);
        const sampler = need(/CFGGuider \d+(?:\.\d+)?, (\w+)/.exec(run.description), 'sampler', run)[1]!;
        const full = basicSchedulerSigmas(ms, sched.scheduler, sched.steps, sched.denoise);
        if (c.hasExpected('split/sigmas_in') && parts[1] === 'stage1') c.check('split/sigmas_in', full);
        const [high, low] = splitSigmas(full, at);
        if (parts[1] === 'stage1') await exec(run, randomNoise(seed), cfgGuider(m, cond, uncond, cfg), sampler, high, latentFor(run, false));
        else await exec(run, disableNoise(), cfgGuider(m, cond, uncond, cfg), sampler, low, latentFor(run, false, 'split/stage1/samples'));
      } else if (parts[0] === 'flip') {
        const sched = need(basicScheduler(run), 'BasicScheduler', run);
        const full = basicSchedulerSigmas(ms, sched.scheduler, sched.steps, sched.denoise);
        if (c.hasExpected('flip/sigmas_in')) c.check('flip/sigmas_in', full);
        await exec(run, disableNoise(), cfgGuider(m, cond, uncond, 1), 'euler', flipSigmas(full), latentFor(run, true));
      } else {
        throw new Error(`custom-sampling: unknown graph "${run.graph}"`);
      }
    }
  },
};
