import { describe, expect, it } from 'vitest';
import { ModelSampling, SD15_LATENT_FORMAT, SDXL_LATENT_FORMAT } from '../../runtime/sampling/model-sampling.js';
import { latentPreview } from '../../runtime/sampling/preview.js';
import { applyStepWindow, defaultNoiseSampler, runSampler, sample, type SampleOptions } from '../../runtime/sampling/sample.js';
import { SAMPLER_NAMES } from '../../runtime/sampling/samplers/index.js';
import { calculateSigmas } from '../../runtime/sampling/schedulers.js';
import { randnLike } from '../../runtime/sampling/torch-rng.js';
import { InterruptedError, SamplingValidationError, type EpsModel, type Shape4, type StepProgress } from '../../runtime/sampling/types.js';

const ms = new ModelSampling();
const shape: Shape4 = [1, 4, 4, 4];
const n = 64;

/** An eps model that predicts "no noise left" scaled towards zero: cheap and deterministic. */
const model: EpsModel & { calls: number } = Object.assign(
  async (xIn: Float32Array) => {
    model.calls++;
    return xIn.map((v) => 0.5 * v);
  },
  { calls: 0 },
);

function opts(over: Partial<SampleOptions> = {}): SampleOptions {
  return {
    model,
    modelSampling: ms,
    sampler: 'euler',
    scheduler: 'normal',
    steps: 4,
    cfg: 7,
    seed: 42,
    latent: { data: new Float32Array(n), shape },
    positive: { context: new Float32Array(77 * 8).fill(1), contextShape: [1, 77, 8] },
    negative: { context: new Float32Array(77 * 8), contextShape: [1, 77, 8] },
    ...over,
  };
}

describe('sample() validation', () => {
  it.each([
    [{ steps: 0 }, /steps/],
    [{ steps: 2.5 }, /steps/],
    [{ denoise: 0 }, /denoise/],
    [{ denoise: 1.5 }, /denoise/],
    [{ denoise: Number.NaN }, /denoise/],
    [{ cfg: -1 }, /cfg/],
    [{ cfg: Number.POSITIVE_INFINITY }, /cfg/],
    [{ sampler: 'euler_a' }, /unknown sampler "euler_a"; valid samplers: euler, euler_cfg_pp, euler_ancestral/],
    [{ scheduler: 'cosine' }, /unknown scheduler "cosine"; valid schedulers: .*karras/],
    [{ startStep: -1 }, /startStep/],
    [{ seed: 1.5 }, /seed/],
    [{ sigmas: Float32Array.from([1, Number.NaN]) }, /sigmas/],
    [{ latent: { data: new Float32Array(10), shape } }, /latent has 10 values/],
    [{ noise: new Float32Array(3) }, /noise has 3 values/],
  ] as Array<[Partial<SampleOptions>, RegExp]>)('%o', async (over, message) => {
    await expect(sample(opts(over))).rejects.toThrow(SamplingValidationError);
    await expect(sample(opts(over))).rejects.toThrow(message);
  });

  it('registers every requested sampler by its ComfyUI name', () => {
    for (const name of ['euler', 'euler_ancestral', 'heun', 'dpm_2', 'dpm_2_ancestral', 'dpmpp_2m', 'dpmpp_2s_ancestral', 'dpmpp_sde', 'dpmpp_2m_sde', 'ddim', 'lcm', 'uni_pc']) {
      expect(SAMPLER_NAMES).toContain(name);
    }
  });
});

describe('sample()', () => {
  it('runs every sampler x scheduler pair and reports each step', async () => {
    for (const sampler of SAMPLER_NAMES) {
      for (const scheduler of ['normal', 'karras', 'exponential', 'sgm_uniform', 'simple', 'ddim_uniform', 'beta', 'linear_quadratic', 'kl_optimal']) {
        const seen: StepProgress[] = [];
        const out = await sample(opts({ sampler, scheduler, steps: 5, onStep: (p) => void seen.push(p) }));
        const total = calculateSigmas(ms, scheduler, 5, sampler).length - 1;
        // dpm_fast / dpm_adaptive report once per solver step (their own count), like ComfyUI.
        if (sampler === 'dpm_fast' || sampler === 'dpm_adaptive') {
          expect(seen.length).toBeGreaterThan(0);
          expect(out.data.every(Number.isFinite), `${sampler}/${scheduler}`).toBe(true);
          continue;
        }
        expect(seen.map((p) => p.step)).toEqual([...Array(total).keys()]);
        expect(seen.every((p) => p.totalSteps === total && p.shape === seen[0]!.shape)).toBe(true);
        expect(out.data.every(Number.isFinite), `${sampler}/${scheduler}`).toBe(true);
      }
    }
  });

  it('uses randnLike(seed) for the initial noise and a fresh generator on the same seed for step noise', async () => {
    const draws: Float32Array[] = [];
    const sampler = defaultNoiseSampler(42, shape);
    draws.push(sampler(1, 0.5), sampler(0.5, 0.1));
    expect(draws[0]).toEqual(randnLike(42, shape));
    expect(draws[1]).not.toEqual(draws[0]);
    const first: Float32Array[] = [];
    await sample(opts({ onStep: (p) => void first.push(p.x) }));
    const expected = ms.noiseScaling(ms.sigmaMax, randnLike(42, shape), null, true);
    const sigmas = calculateSigmas(ms, 'normal', 4);
    expect(ms.isMaxDenoise(sigmas[0]!)).toBe(true);
    expect(Array.from(first[0]!)).toEqual(Array.from(ms.noiseScaling(sigmas[0]!, randnLike(42, shape), null, true)));
    expect(first[0]![0]).toBeCloseTo(expected[0]!, 4);
  });

  it('scales a non-empty latent in and the result out; img2img starts at latent + noise * sigma', async () => {
    const latent = Float32Array.from({ length: n }, (_, i) => (i % 7) - 3);
    const noise = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
    const first: Float32Array[] = [];
    await sample(opts({ latent: { data: latent, shape }, noise, denoise: 0.5, onStep: (p) => void first.push(p.x) }));
    const sigma0 = calculateSigmas(ms, 'normal', 8).slice(-5)[0]!;
    expect(first[0]![5]).toBeCloseTo(latent[5]! * 0.18215 + noise[5]! * sigma0, 5);
    expect(first).toHaveLength(4);

    // SDXL's factor flows through the same path.
    const xl = new ModelSampling({ latentFormat: SDXL_LATENT_FORMAT });
    const firstXl: Float32Array[] = [];
    await sample(opts({ modelSampling: xl, latent: { data: latent, shape }, noise, denoise: 0.5, onStep: (p) => void firstXl.push(p.x) }));
    expect(firstXl[0]![5]).toBeCloseTo(latent[5]! * 0.13025 + noise[5]! * sigma0, 5);
  });

  it('KSamplerAdvanced: step window, leftover noise, add_noise off', async () => {
    const full = calculateSigmas(ms, 'karras', 10);
    expect(applyStepWindow(full, 2, 6, true)).toEqual(Float32Array.from([...full.slice(2, 6), 0]));
    expect(applyStepWindow(full, 2, 6, false)).toEqual(full.slice(2, 7));
    expect(applyStepWindow(full, 10, undefined, true)).toBeNull();
    expect(applyStepWindow(full, undefined, 20, true)).toEqual(full);

    const latent = Float32Array.from({ length: n }, (_, i) => i / 10);
    const untouched = await sample(opts({ latent: { data: latent, shape }, startStep: 4, endStep: 4 }));
    expect(untouched.data).toEqual(latent);

    const seen: StepProgress[] = [];
    await sample(
      opts({ scheduler: 'karras', steps: 10, startStep: 3, endStep: 7, returnWithLeftoverNoise: true, addNoise: false, latent: { data: latent, shape }, onStep: (p) => void seen.push(p) }),
    );
    expect(seen.map((p) => p.sigma)).toEqual(Array.from(full.slice(3, 7)));
    // add_noise off: the first x is the scaled latent itself.
    expect(seen[0]!.x[11]).toBeCloseTo(latent[11]! * 0.18215, 6);
  });

  it('stops with InterruptedError when the signal fires, without further model calls', async () => {
    const controller = new AbortController();
    model.calls = 0;
    const run = sample(
      opts({
        steps: 10,
        signal: controller.signal,
        onStep: (p) => {
          if (p.step === 2) controller.abort();
        },
      }),
    );
    await expect(run).rejects.toBeInstanceOf(InterruptedError);
    expect(model.calls).toBe(3);
    const aborted = new AbortController();
    aborted.abort();
    await expect(sample(opts({ signal: aborted.signal }))).rejects.toBeInstanceOf(InterruptedError);
  });

  it('uni_pc evaluates the model once per step', async () => {
    for (const steps of [2, 3, 4, 8]) {
      let calls = 0;
      const sigmas = calculateSigmas(ms, 'karras', steps, 'uni_pc');
      await runSampler({
        sampler: 'uni_pc',
        denoiser: async (x) => {
          calls++;
          return x.map((v) => v * 0.1);
        },
        modelSampling: ms,
        sigmas,
        x: new Float32Array(n).fill(1),
        shape,
        noiseSampler: () => new Float32Array(n),
      });
      expect(calls).toBe(steps);
    }
  });
});

describe('latentPreview', () => {
  it('maps latent channels to RGB with the SD1.x factors', () => {
    const data = new Float32Array(4 * 2 * 3);
    data[0] = 1; // channel 0, pixel 0
    data[2 * 3 * 3 + 5] = 2; // channel 3, pixel 5
    const img = latentPreview({ data, shape: [1, 4, 2, 3] });
    expect(img.width).toBe(3);
    expect(img.height).toBe(2);
    const byte = (v: number): number => Math.trunc(Math.min(Math.max((v + 1) / 2, 0), 1) * 255);
    const f = SD15_LATENT_FORMAT.rgbFactors;
    expect(Array.from(img.rgb.subarray(0, 3))).toEqual([byte(f[0]![0]!), byte(f[0]![1]!), byte(f[0]![2]!)]);
    expect(Array.from(img.rgb.subarray(15, 18))).toEqual([byte(2 * f[3]![0]!), byte(2 * f[3]![1]!), byte(2 * f[3]![2]!)]);
    expect(Array.from(img.rgb.subarray(3, 6))).toEqual([127, 127, 127]);
  });
});
