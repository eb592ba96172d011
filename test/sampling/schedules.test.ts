import { describe, expect, it } from 'vitest';
import { betaCdf, betaPpf } from '../../runtime/sampling/beta-dist.js';
import {
  ModelSampling,
  SDXL_LATENT_FORMAT,
  processLatentIn,
  processLatentOut,
} from '../../runtime/sampling/model-sampling.js';
import { SCHEDULER_NAMES, calculateSigmas, scheduleSigmas } from '../../runtime/sampling/schedulers.js';
import { SamplingValidationError } from '../../runtime/sampling/types.js';
import { compareTensor, loadCase, toleranceOf, type CaseRun } from './conformance.js';

const ms = new ModelSampling();

describe('model sampling vs ComfyUI', () => {
  const c = loadCase('samplers');
  it.each(['model_sampling/sigmas', 'model_sampling/log_sigmas'])('%s', (name) => {
    const actual = name.endsWith('log_sigmas') ? ms.logSigmas : ms.sigmas;
    expect(compareTensor(actual, c!.expected.readFloat32(name), toleranceOf(c!, name))).toBeNull();
  });
});

describe('model sampling', () => {
  it('has SD1.x sigma range and integer timestep lookup', () => {
    expect(ms.sigmaMin).toBeCloseTo(0.0291671, 6);
    expect(ms.sigmaMax).toBeCloseTo(14.614641, 5);
    for (let i = 0; i < 1000; i++) {
      expect(ms.sigmaToTimestep(ms.sigmas[i]!)).toBe(i);
      expect(Math.abs(ms.timestepToSigma(i) / ms.sigmas[i]! - 1)).toBeLessThan(1e-6);
    }
    // Nearest on log sigma, not interpolated.
    const mid = Math.sqrt(ms.sigmas[500]! * ms.sigmas[501]!);
    expect([500, 501]).toContain(ms.sigmaToTimestep(mid));
    expect(ms.sigmaToTimestep(ms.sigmas[500]! * 1.0001)).toBe(500);
    expect(ms.sigmaToTimestep(100)).toBe(999);
    expect(ms.sigmaToTimestep(0.001)).toBe(0);
  });

  it('interpolates log sigma between timesteps and maps percents like percent_to_sigma', () => {
    const s = ms.timestepToSigma(499.5);
    expect(Math.log(s)).toBeCloseTo((ms.logSigmas[499]! + ms.logSigmas[500]!) / 2, 5);
    expect(ms.percentToSigma(0)).toBe(999999999.9);
    expect(ms.percentToSigma(1)).toBe(0);
    expect(ms.percentToSigma(0.5)).toBe(ms.timestepToSigma(499.5));
    expect(ms.percentToSigma(0.25)).toBeGreaterThan(ms.percentToSigma(0.75));
  });

  it('eps wrapper: input scaling and denoised', () => {
    const x = Float32Array.from([1, -2, 3]);
    const eps = Float32Array.from([0.5, 0.25, -1]);
    const sigma = 2;
    expect(Array.from(ms.calculateInput(sigma, x))).toEqual(Array.from(x, (v) => Math.fround(v / Math.sqrt(5))));
    expect(Array.from(ms.calculateDenoised(sigma, eps, x))).toEqual([0, -2.5, 5]);
  });

  it('v-prediction denoised = x / (sigma^2 + 1) - v * sigma / sqrt(sigma^2 + 1)', () => {
    const v = new ModelSampling({ prediction: 'v' });
    const x = Float32Array.from([1, -2]);
    const out = v.calculateDenoised(3, Float32Array.from([0.5, 1]), x);
    expect(out[0]).toBeCloseTo(1 / 10 - (0.5 * 3) / Math.sqrt(10), 6);
    expect(out[1]).toBeCloseTo(-2 / 10 - 3 / Math.sqrt(10), 6);
  });

  it('noise scaling: txt2img vs img2img start', () => {
    const noise = Float32Array.from([1, -1]);
    const latent = Float32Array.from([0.5, 0.25]);
    const sMax = ms.sigmaMax;
    expect(ms.isMaxDenoise(sMax)).toBe(true);
    expect(ms.isMaxDenoise(sMax * (1 - 5e-6))).toBe(true);
    expect(ms.isMaxDenoise(5)).toBe(false);
    const full = ms.noiseScaling(sMax, noise, null, true);
    expect(full[0]).toBeCloseTo(Math.sqrt(1 + sMax * sMax), 5);
    const part = ms.noiseScaling(2, noise, latent, false);
    expect(Array.from(part)).toEqual([2.5, -1.75]);
  });

  it('latent scale factor is a parameter (SD1.x 0.18215, SDXL 0.13025)', () => {
    const lat = Float32Array.from([1, 2]);
    expect(processLatentIn(ms.latentFormat, lat)[0]).toBeCloseTo(0.18215, 7);
    expect(processLatentIn(SDXL_LATENT_FORMAT, lat)[1]).toBeCloseTo(0.2605, 6);
    const back = processLatentOut(SDXL_LATENT_FORMAT, processLatentIn(SDXL_LATENT_FORMAT, lat));
    expect(back[0]).toBeCloseTo(1, 6);
    expect(new ModelSampling({ latentFormat: SDXL_LATENT_FORMAT }).latentFormat.scaleFactor).toBe(0.13025);
  });
});

const CASES = ['samplers', 'img2img', 'samplers-controlnet', 'pipeline-txt2img'];

describe('every recorded sigma schedule', () => {
  const entries = CASES.flatMap((name) => {
    const c = loadCase(name);
    const p = c.json.params;
    const runs = (p.runs as CaseRun[] | undefined) ?? [
      { name: name === 'pipeline-txt2img' ? 'sample' : `${p.sampler}/${p.scheduler}`, sampler: String(p.sampler), scheduler: String(p.scheduler), steps: Number(p.steps), denoise: 1 } as CaseRun,
    ];
    return runs.map((r) => [`${name} ${r.name}`, name, r] as const);
  });
  it.each(entries)('%s', (_label, name, run) => {
    const c = loadCase(name);
    const tensor = `${run.name}/sigmas`;
    const actual = scheduleSigmas(ms, run.scheduler, run.steps, { denoise: run.denoise ?? 1, sampler: run.sampler });
    expect(compareTensor(actual, c.expected.readFloat32(tensor), toleranceOf(c, tensor))).toBeNull();
  });
});

describe('schedulers', () => {
  it('lists ComfyUI names', () => {
    expect([...SCHEDULER_NAMES]).toEqual(['simple', 'sgm_uniform', 'karras', 'exponential', 'ddim_uniform', 'beta', 'normal', 'linear_quadratic', 'kl_optimal']);
  });

  it('kl_optimal with one step is [nan, 0], as ComfyUI computes it (division by steps - 1)', () => {
    const s = calculateSigmas(ms, 'kl_optimal', 1);
    expect(s).toHaveLength(2);
    expect(Number.isNaN(s[0]!)).toBe(true);
    expect(s[1]).toBe(0);
  });

  it.each(SCHEDULER_NAMES.map((n) => [n]))('%s: decreasing, ends in 0, starts at sigma_max', (name) => {
    for (const steps of [1, 2, 3, 7, 20, 50]) {
      if (name === 'kl_optimal' && steps === 1) continue;
      const s = calculateSigmas(ms, name, steps);
      expect(s[s.length - 1]).toBe(0);
      expect(s.length).toBeGreaterThanOrEqual(2);
      for (let i = 1; i < s.length; i++) expect(s[i]!).toBeLessThan(s[i - 1]!);
      if (name !== 'ddim_uniform') expect(s.length).toBeLessThanOrEqual(steps + 1);
      // ddim_uniform counts up from index 1, so small step counts start well below sigma_max (as in ComfyUI).
      if (name !== 'ddim_uniform') expect(s[0]!).toBeGreaterThan(14.6);
    }
  });

  it('beta matches scipy.stats.beta.ppf(q, 0.6, 0.6) indices', () => {
    // Reference indices computed with numpy/scipy: rint(beta.ppf(1 - linspace(0, 1, n, endpoint=False)) * 999).
    const ref: Record<number, number[]> = {
      1: [999],
      2: [999, 500],
      5: [999, 876, 637, 362, 123],
      10: [999, 959, 876, 765, 637, 500, 362, 234, 123, 40],
      20: [999, 986, 959, 922, 876, 823, 765, 703, 637, 569, 500, 430, 362, 296, 234, 176, 123, 77, 40, 13],
    };
    for (const [steps, idx] of Object.entries(ref)) {
      expect(Array.from(calculateSigmas(ms, 'beta', Number(steps)))).toEqual([...idx.map((i) => ms.sigmas[i]!), 0]);
    }
    expect(betaPpf(0.1, 0.6, 0.6)).toBeCloseTo(0.039584405588780916, 12);
    expect(betaPpf(0.95, 0.6, 0.6)).toBeCloseTo(0.9874455431263885, 12);
    for (const q of [0.01, 0.2, 0.5, 0.77]) expect(betaCdf(betaPpf(q, 2, 5), 2, 5)).toBeCloseTo(q, 12);
  });

  it('ddim_uniform takes every (1000 // steps)-th sigma from index 1, so 6 steps give 7', () => {
    const s = calculateSigmas(ms, 'ddim_uniform', 6);
    expect(Array.from(s)).toEqual([997, 831, 665, 499, 333, 167, 1].map((i) => ms.sigmas[i]!).concat(0));
  });

  it('dpm_2 / dpm_2_ancestral / uni_pc drop the penultimate sigma of a one-longer schedule', () => {
    for (const sampler of ['dpm_2', 'dpm_2_ancestral', 'uni_pc', 'uni_pc_bh2']) {
      const longer = calculateSigmas(ms, 'karras', 9);
      const s = calculateSigmas(ms, 'karras', 8, sampler);
      expect(s.length).toBe(9);
      expect(Array.from(s)).toEqual([...Array.from(longer.subarray(0, 8)), 0]);
    }
    expect(calculateSigmas(ms, 'karras', 8, 'euler').length).toBe(9);
  });

  it('denoise < 1 keeps the last steps + 1 of int(steps / denoise) sigmas', () => {
    const s = scheduleSigmas(ms, 'normal', 6, { denoise: 0.6 });
    expect(Array.from(s)).toEqual(Array.from(calculateSigmas(ms, 'normal', 10).slice(-7)));
    expect(scheduleSigmas(ms, 'karras', 4, { denoise: 0.99995 })).toEqual(calculateSigmas(ms, 'karras', 4));
    expect(scheduleSigmas(ms, 'simple', 3, { denoise: 0.33 }).length).toBe(4);
  });

  it('rejects unknown names, listing the valid ones', () => {
    expect(() => calculateSigmas(ms, 'linear', 4)).toThrow(SamplingValidationError);
    expect(() => calculateSigmas(ms, 'linear', 4)).toThrow(/unknown scheduler "linear".*karras.*normal/);
    expect(() => calculateSigmas(ms, '__proto__', 4)).toThrow(/unknown scheduler/);
    expect(() => calculateSigmas(ms, 'normal', 0)).toThrow(/steps/);
    expect(() => scheduleSigmas(ms, 'normal', 4, { denoise: 0 })).toThrow(/denoise/);
  });
});
