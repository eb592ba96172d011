import { beforeAll, describe, expect, it } from 'vitest';
import { Executor } from '../../runtime/executor/executor.js';
import { validatePrompt } from '../../runtime/executor/validate.js';
import { DEMO_CHECKPOINT } from '../../runtime/models/synthetic/demo.js';
import { DEMO_SDXL_CHECKPOINT } from '../../runtime/models/synthetic/demo-sdxl.js';
import { ModelSampling } from '../../runtime/sampling/model-sampling.js';
import { SAMPLER_NAMES } from '../../runtime/sampling/samplers/index.js';
import { SCHEDULER_NAMES, betaScheduler, karrasSigmas } from '../../runtime/sampling/schedulers.js';
import { laplaceSigmas, vpSigmas } from '../../runtime/sampling/sigma-ops.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import type { LatentValue } from '../../nodes/core/types.js';
import { demoRuntime, type TestRuntime } from './helpers.js';

type Node = ApiPrompt[string];
const n = (class_type: string, inputs: Record<string, unknown>): Node => ({ class_type, inputs }) as Node;

/** Loader, prompts and a small empty latent: ids 1..4. */
function base(width = 64, height = 48): ApiPrompt {
  return {
    '1': n('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT }),
    '2': n('CLIPTextEncode', { text: 'a watercolor fox in a forest', clip: ['1', 1] }),
    '3': n('CLIPTextEncode', { text: 'blurry', clip: ['1', 1] }),
    '4': n('EmptyLatentImage', { width, height, batch_size: 1 }),
  };
}

describe('custom-sampling and model-sampling nodes run through the executor on the demo model', () => {
  let rt: TestRuntime;
  const captured = new Map<string, unknown[]>();

  beforeAll(async () => {
    rt = await demoRuntime('resflow-custom-sampling-');
    // A test sink: an output node that keeps whatever reaches it, keyed by its node id.
    rt.registry.register({
      name: 'TestCapture',
      category: 'test',
      outputNode: true,
      inputs: { required: { value: { type: '*' } }, hidden: { id: 'UNIQUE_ID' } },
      outputs: [],
      execute: ({ value, id }) => {
        captured.set(String(id), [...(captured.get(String(id)) ?? []), value]);
      },
    });
  });

  async function run(prompt: ApiPrompt): Promise<void> {
    captured.clear();
    const v = await validatePrompt(prompt, rt.registry);
    if (!v.ok) throw new Error(`invalid: ${JSON.stringify(v.node_errors)} ${v.error.message}`);
    const r = await new Executor().run(v.graph);
    if (r.status !== 'success') throw new Error(`run failed: ${JSON.stringify(r.error ?? r.interrupted)}`);
  }
  const latentOf = (id: string) => (captured.get(id)![0] as LatentValue).samples.data;
  const sigmasOf = (id: string) => captured.get(id)![0] as Float32Array;
  const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    expect(a.length).toBe(b.length);
    let m = 0;
    for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
    return m;
  };

  it('the sampler and scheduler combos list all 42 ComfyUI sampler names and 9 schedulers', () => {
    const ks = rt.registry.get('KSamplerSelect')!;
    expect(SAMPLER_NAMES).toHaveLength(42);
    expect(SCHEDULER_NAMES).toHaveLength(9);
    expect((ks.spec.inputs!.required!.sampler_name as { options: readonly string[] }).options).toEqual(SAMPLER_NAMES);
  });

  it('SamplerCustomAdvanced(RandomNoise, CFGGuider, KSamplerSelect, BasicScheduler) is bit-identical to KSampler', async () => {
    await run({
      ...base(),
      '5': n('KSampler', { model: ['1', 0], seed: 7, steps: 3, cfg: 6, sampler_name: 'euler_ancestral', scheduler: 'karras', positive: ['2', 0], negative: ['3', 0], latent_image: ['4', 0], denoise: 1 }),
      '6': n('RandomNoise', { noise_seed: 7 }),
      '7': n('CFGGuider', { model: ['1', 0], positive: ['2', 0], negative: ['3', 0], cfg: 6 }),
      '8': n('KSamplerSelect', { sampler_name: 'euler_ancestral' }),
      '9': n('BasicScheduler', { model: ['1', 0], scheduler: 'karras', steps: 3, denoise: 1 }),
      '10': n('SamplerCustomAdvanced', { noise: ['6', 0], guider: ['7', 0], sampler: ['8', 0], sigmas: ['9', 0], latent_image: ['4', 0] }),
      '11': n('TestCapture', { value: ['5', 0] }),
      '12': n('TestCapture', { value: ['10', 0] }),
      '13': n('TestCapture', { value: ['10', 1] }),
    });
    const a = latentOf('11');
    expect(a.some((v) => v !== 0)).toBe(true);
    expect(Array.from(latentOf('12'))).toEqual(Array.from(a));
    // denoised_output is the last step's prediction; an ancestral step to sigma 0 lands exactly on it.
    expect(Array.from(latentOf('13'))).toEqual(Array.from(a));
  });

  it('SamplerCustom with SDTurboScheduler equals SamplerCustomAdvanced with the same pieces; BasicGuider equals CFGGuider at cfg 1', async () => {
    await run({
      ...base(),
      '5': n('KSamplerSelect', { sampler_name: 'lcm' }),
      '6': n('SDTurboScheduler', { model: ['1', 0], steps: 2, denoise: 1 }),
      '7': n('SamplerCustom', { model: ['1', 0], add_noise: true, noise_seed: 3, cfg: 1, positive: ['2', 0], negative: ['3', 0], sampler: ['5', 0], sigmas: ['6', 0], latent_image: ['4', 0] }),
      '8': n('RandomNoise', { noise_seed: 3 }),
      '9': n('BasicGuider', { model: ['1', 0], conditioning: ['2', 0] }),
      '10': n('SamplerCustomAdvanced', { noise: ['8', 0], guider: ['9', 0], sampler: ['5', 0], sigmas: ['6', 0], latent_image: ['4', 0] }),
      '11': n('TestCapture', { value: ['7', 0] }),
      '12': n('TestCapture', { value: ['10', 0] }),
      '13': n('TestCapture', { value: ['6', 0] }),
    });
    const ms = new ModelSampling();
    // Timesteps 999 and 899 of the schedule, then 0.
    expect(Array.from(sigmasOf('13'))).toEqual([ms.timestepToSigma(999), ms.timestepToSigma(899), 0]);
    expect(sigmasOf('13')[0]).toBeCloseTo(ms.sigmas[999]!, 5);
    expect(Array.from(latentOf('12'))).toEqual(Array.from(latentOf('11')));
  });

  it('SplitSigmas + DisableNoise chains two euler stages into the single run; FlipSigmas and SplitSigmasDenoise shape the schedule', async () => {
    await run({
      ...base(),
      '5': n('BasicScheduler', { model: ['1', 0], scheduler: 'normal', steps: 4, denoise: 1 }),
      '6': n('SplitSigmas', { sigmas: ['5', 0], step: 2 }),
      '7': n('CFGGuider', { model: ['1', 0], positive: ['2', 0], negative: ['3', 0], cfg: 5 }),
      '8': n('KSamplerSelect', { sampler_name: 'euler' }),
      '9': n('RandomNoise', { noise_seed: 11 }),
      '10': n('DisableNoise', {}),
      '11': n('SamplerCustomAdvanced', { noise: ['9', 0], guider: ['7', 0], sampler: ['8', 0], sigmas: ['6', 0], latent_image: ['4', 0] }),
      '12': n('SamplerCustomAdvanced', { noise: ['10', 0], guider: ['7', 0], sampler: ['8', 0], sigmas: ['6', 1], latent_image: ['11', 0] }),
      '13': n('SamplerCustomAdvanced', { noise: ['9', 0], guider: ['7', 0], sampler: ['8', 0], sigmas: ['5', 0], latent_image: ['4', 0] }),
      '14': n('FlipSigmas', { sigmas: ['5', 0] }),
      '15': n('SplitSigmasDenoise', { sigmas: ['5', 0], denoise: 0.5 }),
      '20': n('TestCapture', { value: ['12', 0] }),
      '21': n('TestCapture', { value: ['13', 0] }),
      '22': n('TestCapture', { value: ['5', 0] }),
      '23': n('TestCapture', { value: ['6', 0] }),
      '24': n('TestCapture', { value: ['6', 1] }),
      '25': n('TestCapture', { value: ['14', 0] }),
      '26': n('TestCapture', { value: ['15', 0] }),
      '27': n('TestCapture', { value: ['15', 1] }),
    });
    const full = Array.from(sigmasOf('22'));
    expect(full).toHaveLength(5);
    expect(Array.from(sigmasOf('23'))).toEqual(full.slice(0, 3));
    expect(Array.from(sigmasOf('24'))).toEqual(full.slice(2));
    expect(Array.from(sigmasOf('25'))).toEqual([Math.fround(0.0001), ...full.slice(0, 4).reverse()]);
    expect(Array.from(sigmasOf('26'))).toEqual(full.slice(0, 3));
    expect(Array.from(sigmasOf('27'))).toEqual(full.slice(2));
    const chained = latentOf('20');
    const single = latentOf('21');
    const scale = Math.max(...Array.from(single, Math.abs));
    expect(maxDiff(chained, single)).toBeLessThan(1e-5 * scale + 1e-6);
  });

  it('DualCFGGuider with cond1 = cond2 is plain CFG at cfg_cond2_negative; scheduler nodes give the formulas', async () => {
    await run({
      ...base(),
      '5': n('DualCFGGuider', { model: ['1', 0], cond1: ['2', 0], cond2: ['2', 0], negative: ['3', 0], cfg_conds: 4, cfg_cond2_negative: 3, style: 'regular' }),
      '6': n('CFGGuider', { model: ['1', 0], positive: ['2', 0], negative: ['3', 0], cfg: 3 }),
      '7': n('KSamplerSelect', { sampler_name: 'dpmpp_2m' }),
      '8': n('KarrasScheduler', { steps: 3, sigma_max: 14.614642, sigma_min: 0.0291675, rho: 7 }),
      '9': n('RandomNoise', { noise_seed: 5 }),
      '10': n('SamplerCustomAdvanced', { noise: ['9', 0], guider: ['5', 0], sampler: ['7', 0], sigmas: ['8', 0], latent_image: ['4', 0] }),
      '11': n('SamplerCustomAdvanced', { noise: ['9', 0], guider: ['6', 0], sampler: ['7', 0], sigmas: ['8', 0], latent_image: ['4', 0] }),
      '12': n('ExponentialScheduler', { steps: 3, sigma_max: 10, sigma_min: 0.1 }),
      '13': n('PolyexponentialScheduler', { steps: 3, sigma_max: 10, sigma_min: 0.1, rho: 1 }),
      '14': n('LaplaceScheduler', { steps: 5, sigma_max: 14.614642, sigma_min: 0.0291675, mu: 0, beta: 0.5 }),
      '15': n('VPScheduler', { steps: 5, beta_d: 19.9, beta_min: 0.1, eps_s: 0.001 }),
      '16': n('BetaSamplingScheduler', { model: ['1', 0], steps: 5, alpha: 0.6, beta: 0.6 }),
      '20': n('TestCapture', { value: ['10', 0] }),
      '21': n('TestCapture', { value: ['11', 0] }),
      '22': n('TestCapture', { value: ['8', 0] }),
      '23': n('TestCapture', { value: ['12', 0] }),
      '24': n('TestCapture', { value: ['13', 0] }),
      '25': n('TestCapture', { value: ['14', 0] }),
      '26': n('TestCapture', { value: ['15', 0] }),
      '27': n('TestCapture', { value: ['16', 0] }),
    });
    expect(Array.from(sigmasOf('25'))).toEqual(Array.from(laplaceSigmas(5, 0.0291675, 14.614642, 0, 0.5)));
    expect(sigmasOf('25')).toHaveLength(5);
    expect(Array.from(sigmasOf('26'))).toEqual(Array.from(vpSigmas(5, 19.9, 0.1, 0.001)));
    expect(Array.from(sigmasOf('27'))).toEqual(Array.from(betaScheduler(new ModelSampling(), 5, 0.6, 0.6)));
    expect(sigmasOf('27')[0]).toBeCloseTo(14.6146, 3);
    const dual = latentOf('20');
    const plain = latentOf('21');
    const scale = Math.max(...Array.from(plain, Math.abs));
    expect(maxDiff(dual, plain)).toBeLessThan(1e-5 * scale + 1e-6);
    expect(Array.from(sigmasOf('22'))).toEqual(Array.from(karrasSigmas(3, 0.0291675, 14.614642)));
    // Exponential: 10, 1, 0.1, 0; polyexponential with rho 1 is the same schedule.
    const exp = Array.from(sigmasOf('23'));
    expect(exp[0]).toBeCloseTo(10, 5);
    expect(exp[1]).toBeCloseTo(1, 5);
    expect(exp[2]).toBeCloseTo(0.1, 6);
    expect(exp[3]).toBe(0);
    expect(maxDiff(sigmasOf('24'), exp)).toBeLessThan(1e-5);
  });

  it('ModelSamplingDiscrete eps leaves KSampler unchanged, v_prediction / x0 / lcm change it; RescaleCFG 0 is plain CFG; EDM runs', async () => {
    const ks = (model: [string, number]) => ({ model, seed: 9, steps: 2, cfg: 5, sampler_name: 'euler', scheduler: 'normal', positive: ['2', 0], negative: ['3', 0], latent_image: ['4', 0], denoise: 1 });
    await run({
      ...base(),
      '5': n('ModelSamplingDiscrete', { model: ['1', 0], sampling: 'eps', zsnr: false }),
      '6': n('ModelSamplingDiscrete', { model: ['1', 0], sampling: 'v_prediction', zsnr: true }),
      '7': n('ModelSamplingDiscrete', { model: ['1', 0], sampling: 'lcm', zsnr: false }),
      '8': n('ModelSamplingDiscrete', { model: ['1', 0], sampling: 'x0', zsnr: false }),
      '9': n('RescaleCFG', { model: ['1', 0], multiplier: 0 }),
      '10': n('ModelSamplingContinuousEDM', { model: ['1', 0], sampling: 'edm', sigma_max: 80, sigma_min: 0.002 }),
      '18': n('ModelSamplingDiscrete', { model: ['1', 0], sampling: 'img_to_img', zsnr: false }),
      '19': n('KSampler', ks(['18', 0])),
      '27': n('TestCapture', { value: ['19', 0] }),
      '11': n('KSampler', ks(['1', 0])),
      '12': n('KSampler', ks(['5', 0])),
      '13': n('KSampler', ks(['6', 0])),
      '14': n('KSampler', ks(['7', 0])),
      '15': n('KSampler', ks(['8', 0])),
      '16': n('KSampler', ks(['9', 0])),
      '17': n('KSampler', ks(['10', 0])),
      '20': n('TestCapture', { value: ['11', 0] }),
      '21': n('TestCapture', { value: ['12', 0] }),
      '22': n('TestCapture', { value: ['13', 0] }),
      '23': n('TestCapture', { value: ['14', 0] }),
      '24': n('TestCapture', { value: ['15', 0] }),
      '25': n('TestCapture', { value: ['16', 0] }),
      '26': n('TestCapture', { value: ['17', 0] }),
    });
    const plain = latentOf('20');
    expect(Array.from(latentOf('21'))).toEqual(Array.from(plain));
    for (const id of ['22', '23', '24', '26', '27']) {
      const other = latentOf(id);
      expect(other.every(Number.isFinite), id).toBe(true);
      expect(maxDiff(other, plain), id).toBeGreaterThan(1e-3);
    }
    const scale = Math.max(...Array.from(plain, Math.abs));
    expect(maxDiff(latentOf('25'), plain)).toBeLessThan(1e-4 * scale);
  });

  it('SDXL: a CFG++ sampler through SamplerCustomAdvanced equals KSampler, and RescaleCFG runs (each side gets its own y)', async () => {
    const sdxl = (k: string, model: [string, number]) => n('KSampler', { model, seed: 4, steps: 2, cfg: 4, sampler_name: k, scheduler: 'karras', positive: ['2', 0], negative: ['3', 0], latent_image: ['4', 0], denoise: 1 });
    await run({
      '1': n('CheckpointLoaderSimple', { ckpt_name: DEMO_SDXL_CHECKPOINT }),
      '2': n('CLIPTextEncodeSDXL', { clip: ['1', 1], width: 64, height: 48, crop_w: 0, crop_h: 0, target_width: 64, target_height: 48, text_g: 'a red boat', text_l: 'a red boat' }),
      '3': n('CLIPTextEncode', { text: 'fog', clip: ['1', 1] }),
      '4': n('EmptyLatentImage', { width: 64, height: 48, batch_size: 1 }),
      '5': sdxl('euler_cfg_pp', ['1', 0]),
      '6': n('RandomNoise', { noise_seed: 4 }),
      '7': n('CFGGuider', { model: ['1', 0], positive: ['2', 0], negative: ['3', 0], cfg: 4 }),
      '8': n('KSamplerSelect', { sampler_name: 'euler_cfg_pp' }),
      '9': n('BasicScheduler', { model: ['1', 0], scheduler: 'karras', steps: 2, denoise: 1 }),
      '10': n('SamplerCustomAdvanced', { noise: ['6', 0], guider: ['7', 0], sampler: ['8', 0], sigmas: ['9', 0], latent_image: ['4', 0] }),
      '11': n('RescaleCFG', { model: ['1', 0], multiplier: 0 }),
      '12': sdxl('euler', ['11', 0]),
      '13': sdxl('euler', ['1', 0]),
      '20': n('TestCapture', { value: ['5', 0] }),
      '21': n('TestCapture', { value: ['10', 0] }),
      '22': n('TestCapture', { value: ['12', 0] }),
      '23': n('TestCapture', { value: ['13', 0] }),
    });
    expect(latentOf('20').some((v) => v !== 0)).toBe(true);
    expect(Array.from(latentOf('21'))).toEqual(Array.from(latentOf('20')));
    const plain = latentOf('23');
    expect(maxDiff(latentOf('22'), plain)).toBeLessThan(1e-4 * Math.max(...Array.from(plain, Math.abs)));
  });

  it('bad inputs name the problem', async () => {
    const v = await validatePrompt(
      { ...base(), '5': n('KSamplerSelect', { sampler_name: 'euler_a' }), '6': n('TestCapture', { value: ['5', 0] }) },
      rt.registry,
    );
    expect(v.ok).toBe(false);
    expect(JSON.stringify(v)).toMatch(/euler_a/);
  });
});
