/**
 * Sampler math against ComfyUI's recorded runs, without a UNet: recorded predictions and noise draws
 * are fed back, and every per-step x plus the final latent must match within the case tolerances.
 */
import { describe, expect, it } from 'vitest';
import { ModelSampling, processLatentIn, processLatentOut } from '../../runtime/sampling/model-sampling.js';
import { defaultNoiseSampler, runSampler, sample } from '../../runtime/sampling/sample.js';
import { scheduleSigmas } from '../../runtime/sampling/schedulers.js';
import type { Conditioning, ControlNetApplication, Shape4 } from '../../runtime/sampling/types.js';
import { compareTensor, loadCase, row, toleranceOf, type CaseRun, type ConformanceCase } from './conformance.js';
import { callPlan, expectTrace, loadRecording, replayDenoiser, replayEpsModel, replayNoise } from './replay.js';

const ms = new ModelSampling();

function conditioning(c: ConformanceCase, name: string, file: 'inputs' | 'expected' = 'inputs'): Conditioning {
  const f = c[file];
  return { context: f.readFloat32(name), contextShape: f.info(name).shape as [number, number, number] };
}

interface RunSpec {
  caseName: string;
  prefix: string;
  sampler: string;
  scheduler: string;
  steps: number;
  denoise: number;
  seed: number;
}

function runsOf(caseName: string): RunSpec[] {
  const c = loadCase(caseName);
  const p = c.json.params;
  const runs = (p.runs as CaseRun[] | undefined) ?? [];
  if (runs.length > 0) return runs.map((r) => ({ caseName, prefix: r.name, ...r }));
  if (caseName === 'pipeline-txt2img') {
    return [{ caseName, prefix: 'sample', sampler: String(p.sampler), scheduler: String(p.scheduler), steps: Number(p.steps), denoise: 1, seed: Number(p.seed) }];
  }
  return [{ caseName, prefix: `${p.sampler}/${p.scheduler}`, sampler: String(p.sampler), scheduler: String(p.scheduler), steps: Number(p.steps), denoise: 1, seed: Number(p.seed) }];
}

const ALL_RUNS = ['samplers', 'img2img', 'samplers-controlnet', 'pipeline-txt2img'].flatMap(runsOf);

function initialNoise(c: ConformanceCase): Float32Array {
  return c.inputs.has('noise') ? c.inputs.readFloat32('noise') : c.expected.readFloat32('noise');
}

function latentImage(c: ConformanceCase, shape: Shape4): Float32Array {
  return c.inputs.has('latent_image') ? c.inputs.readFloat32('latent_image') : new Float32Array(shape.reduce((a, b) => a * b, 1));
}

describe('recorded ComfyUI runs (replayed predictions)', () => {
  it.each(ALL_RUNS.map((r) => [`${r.caseName} ${r.prefix}`, r] as const))('%s: sampler math via runSampler', async (_n, spec) => {
    const c = loadCase(spec.caseName);
    const rec = loadRecording(c, spec.prefix);
    const sigmas = scheduleSigmas(ms, spec.scheduler, spec.steps, { denoise: spec.denoise, sampler: spec.sampler });
    expect(compareTensor(sigmas, rec.sigmas, toleranceOf(c, `${spec.prefix}/sigmas`))).toBeNull();

    const noise = initialNoise(c);
    const latent = latentImage(c, rec.shape);
    const isEmpty = latent.every((v) => v === 0);
    const x0 = ms.noiseScaling(rec.sigmas[0]!, noise, isEmpty ? null : processLatentIn(ms.latentFormat, latent), ms.isMaxDenoise(rec.sigmas[0]!));

    const denoiser = replayDenoiser(rec);
    const noiseSampler = replayNoise(rec);
    const xs: Float32Array[] = [];
    const out = await runSampler({
      sampler: spec.sampler,
      denoiser,
      modelSampling: ms,
      sigmas: rec.sigmas,
      x: x0,
      shape: rec.shape,
      noiseSampler,
      onStep: (p) => {
        xs.push(Float32Array.from(p.x));
        expect(p.denoised).toEqual(row(rec.stepDenoised, rec.steps, p.step));
        expect(p.totalSteps).toBe(rec.steps);
        expect(p.sigma).toBe(rec.sigmas[p.step]);
      },
    });
    expect(noiseSampler.calls).toBe(rec.nNoiseCalls);
    expect(denoiser.calls).toBe(callPlan(rec, spec.sampler).length);
    expectTrace(c, rec, xs, processLatentOut(ms.latentFormat, out));
  });

  it.each(ALL_RUNS.map((r) => [`${r.caseName} ${r.prefix}`, r] as const))('%s: end to end via sample()', async (_n, spec) => {
    const c = loadCase(spec.caseName);
    const rec = loadRecording(c, spec.prefix);
    const fromExpected = spec.caseName === 'pipeline-txt2img';
    const positive = conditioning(c, 'cond', fromExpected ? 'expected' : 'inputs');
    const negative = conditioning(c, 'uncond', fromExpected ? 'expected' : 'inputs');
    let control: ControlNetApplication | undefined;
    if (c.inputs.has('hint')) {
      const p = c.json.params;
      control = {
        controlNet: { name: 'replayed' },
        hint: c.inputs.readFloat32('hint'),
        hintShape: c.inputs.info('hint').shape as Shape4,
        strength: Number(p.strength),
        startPercent: Number(p.start_percent),
        endPercent: Number(p.end_percent),
      };
      positive.controls = [control];
      negative.controls = [control];
    }
    const plan = callPlan(rec, spec.sampler);
    const model = replayEpsModel(rec, ms, plan, (cond, shape) => {
      // One batch [uncond, cond] per call, contexts stacked in that order.
      expect(cond.condOrUncond).toEqual(['uncond', 'cond']);
      expect(shape).toEqual([2 * rec.shape[0], rec.shape[1], rec.shape[2], rec.shape[3]]);
      expect(cond.context.subarray(0, negative.context.length)).toEqual(negative.context);
      expect(cond.context.subarray(negative.context.length)).toEqual(positive.context);
      if (control) {
        expect(cond.controls).toHaveLength(1);
        expect(cond.controls[0]!.strength).toBe(control.strength);
        expect(cond.controls[0]!.hintShape).toEqual([2, ...control.hintShape.slice(1)]);
      } else {
        expect(cond.controls).toEqual([]);
      }
    });
    const xs: Float32Array[] = [];
    const result = await sample({
      model,
      modelSampling: ms,
      sampler: spec.sampler,
      scheduler: spec.scheduler,
      steps: spec.steps,
      cfg: 7,
      denoise: spec.denoise,
      seed: spec.seed,
      latent: { data: latentImage(c, rec.shape), shape: rec.shape },
      positive,
      negative,
      noise: initialNoise(c),
      noiseSampler: rec.noiseCalls ? replayNoise(rec) : undefined,
      onStep: (p) => {
        xs.push(Float32Array.from(p.x));
      },
    });
    expect(model.calls).toBe(plan.length);
    expect(result.shape).toEqual(rec.shape);
    expectTrace(c, rec, xs, result.data);
  });
});

// The default noise path: initial noise and ancestral draws from the torch generator on the run's seed.
const STOCHASTIC = ALL_RUNS.filter((r) => r.sampler === 'euler_ancestral' || r.sampler === 'lcm' || r.sampler === 'dpmpp_2m_sde');

describe('default noise (torch generator) reproduces the recorded draws', () => {
  it.each(STOCHASTIC.map((r) => [`${r.caseName} ${r.prefix}`, r] as const))('%s', async (_n, spec) => {
    const c = loadCase(spec.caseName);
    const rec = loadRecording(c, spec.prefix);
    const fromExpected = spec.caseName === 'pipeline-txt2img';
    const model = replayEpsModel(rec, ms, callPlan(rec, spec.sampler));
    const xs: Float32Array[] = [];
    const result = await sample({
      model,
      modelSampling: ms,
      sampler: spec.sampler,
      scheduler: spec.scheduler,
      steps: spec.steps,
      cfg: 7,
      denoise: spec.denoise,
      seed: spec.seed,
      latent: { data: latentImage(c, rec.shape), shape: rec.shape },
      positive: conditioning(c, 'cond', fromExpected ? 'expected' : 'inputs'),
      negative: conditioning(c, 'uncond', fromExpected ? 'expected' : 'inputs'),
      // These legacy dpmpp_2m_sde runs stand in seeded Gaussian draws for torchsde's Brownian tree (our
      // default for it now, checked against conformance-next): ask for that generator explicitly.
      noiseSampler: spec.sampler === 'dpmpp_2m_sde' ? defaultNoiseSampler(spec.seed, rec.shape) : undefined,
      onStep: (p) => {
        xs.push(Float32Array.from(p.x));
      },
    });
    expectTrace(c, rec, xs, result.data);
  });
});
