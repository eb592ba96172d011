import { beforeAll, describe, expect, it } from 'vitest';
import { Executor } from '../../runtime/executor/executor.js';
import { validatePrompt } from '../../runtime/executor/validate.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import { DEMO_CHECKPOINT } from '../../runtime/models/synthetic/demo.js';
import { condEntries } from '../../runtime/sampling/cond-entries.js';
import type { ConditioningValue, LatentValue } from '../../nodes/core/types.js';
import { captureNode, demoRuntime, type TestRuntime } from './helpers.js';

/**
 * API prompts with the conditioning nodes through the executor on the demo model. Where a node should not
 * change the result (an area covering the whole latent, a range that never starts, a prompt concatenated
 * with itself) the latent must equal the plain run's; elsewhere it must differ.
 */

type Node = ApiPrompt[string];
const n = (class_type: string, inputs: Record<string, unknown>): Node => ({ class_type, inputs }) as Node;

const { spec: CAPTURE, captured } = captureNode();

async function run(rt: TestRuntime, prompt: ApiPrompt): Promise<void> {
  const v = await validatePrompt(prompt, rt.registry);
  if (!v.ok) throw new Error(`invalid: ${JSON.stringify(v.node_errors)} ${v.error.message}`);
  const r = await new Executor().run(v.graph);
  if (r.status !== 'success') throw new Error(`run failed: ${JSON.stringify(r.error ?? r.interrupted)}`);
}

/** Checkpoint, prompts A / B / negative, a 64x48 latent, and a KSampler on `positive` captured as `key`. */
function base(positive: unknown, key: string, extra: Record<string, Node> = {}, negative: unknown = ['4', 0]): ApiPrompt {
  return {
    '1': n('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT }),
    '2': n('CLIPTextEncode', { text: 'a red house by a lake', clip: ['1', 1] }),
    '3': n('CLIPTextEncode', { text: 'a green forest at night', clip: ['1', 1] }),
    '4': n('CLIPTextEncode', { text: 'blurry', clip: ['1', 1] }),
    '5': n('EmptyLatentImage', { width: 64, height: 48, batch_size: 1 }),
    ...extra,
    '20': n('KSampler', { model: ['1', 0], seed: 7, steps: 2, cfg: 6, sampler_name: 'euler', scheduler: 'normal', positive, negative, latent_image: ['5', 0], denoise: 1 }),
    '21': n('TestCapture', { value: ['20', 0], key }),
  };
}

const samples = (key: string) => (captured.get(key) as LatentValue).samples.data;
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('conditioning nodes in workflows (demo model)', () => {
  let rt: TestRuntime;
  let plain: Float32Array;

  beforeAll(async () => {
    rt = await demoRuntime('resflow-cond-wf-');
    rt.registry.register(CAPTURE);
    await run(rt, base(['2', 0], 'plain'));
    plain = samples('plain');
  }, 120_000);

  it('plain sampling gives a real latent', () => {
    expect(plain.length).toBe(4 * 6 * 8);
    expect(plain.some((v) => Math.abs(v) > 1e-3)).toBe(true);
  });

  it('ConditioningCombine of A with A over the full area (SetArea, SetAreaPercentage, SetAreaStrength) equals plain A', async () => {
    await run(
      rt,
      base(['12', 0], 'full-area', {
        '10': n('ConditioningSetArea', { conditioning: ['2', 0], width: 64, height: 48, x: 0, y: 0, strength: 1 }),
        '11': n('ConditioningSetAreaStrength', { conditioning: ['10', 0], strength: 1 }),
        '12': n('ConditioningCombine', { conditioning_1: ['2', 0], conditioning_2: ['11', 0] }),
      }),
    );
    expect(maxDiff(samples('full-area'), plain)).toBeLessThan(1e-3);
    await run(
      rt,
      base(['12', 0], 'full-pct', {
        '10': n('ConditioningSetAreaPercentage', { conditioning: ['2', 0], width: 1, height: 1, x: 0, y: 0, strength: 1 }),
        '12': n('ConditioningCombine', { conditioning_1: ['2', 0], conditioning_2: ['10', 0] }),
      }),
    );
    expect(maxDiff(samples('full-pct'), plain)).toBeLessThan(1e-3);
  }, 120_000);

  it('a second prompt in a corner area changes the result (more where it applies)', async () => {
    await run(
      rt,
      base(['12', 0], 'corner', {
        '10': n('ConditioningSetArea', { conditioning: ['3', 0], width: 32, height: 24, x: 32, y: 24, strength: 2 }),
        '12': n('ConditioningCombine', { conditioning_1: ['2', 0], conditioning_2: ['10', 0] }),
        '13': n('TestCapture', { value: ['12', 0], key: 'corner-cond' }),
      }),
    );
    const entries = condEntries(captured.get('corner-cond') as ConditioningValue);
    expect(entries).toHaveLength(2);
    expect(entries[1]!.area).toEqual({ unit: 'cells', height: 3, width: 4, y: 3, x: 4 });
    expect(entries[1]!.strength).toBe(2);
    expect(maxDiff(samples('corner'), plain)).toBeGreaterThan(1e-2);
  }, 120_000);

  it('SetMask with a full SolidMask, Concat of a prompt with itself and Average at strength 1 leave A unchanged', async () => {
    await run(
      rt,
      base(['12', 0], 'mask-full', {
        '9': n('SolidMask', { value: 1, width: 64, height: 48 }),
        '10': n('ConditioningSetMask', { conditioning: ['2', 0], mask: ['9', 0], strength: 1, set_cond_area: 'default' }),
        '12': n('ConditioningCombine', { conditioning_1: ['2', 0], conditioning_2: ['10', 0] }),
      }),
    );
    expect(maxDiff(samples('mask-full'), plain)).toBeLessThan(1e-3);
    await run(rt, base(['10', 0], 'concat-self', { '10': n('ConditioningConcat', { conditioning_to: ['2', 0], conditioning_from: ['2', 0] }), '11': n('TestCapture', { value: ['10', 0], key: 'concat-cond' }) }));
    expect((captured.get('concat-cond') as ConditioningValue).contextShape[1]).toBe(154);
    expect(maxDiff(samples('concat-self'), plain)).toBeLessThan(1e-3);
    await run(rt, base(['10', 0], 'avg-1', { '10': n('ConditioningAverage', { conditioning_to: ['2', 0], conditioning_from: ['3', 0], conditioning_to_strength: 1 }) }));
    expect(maxDiff(samples('avg-1'), plain)).toBeLessThan(1e-4);
    await run(rt, base(['10', 0], 'avg-0', { '10': n('ConditioningAverage', { conditioning_to: ['2', 0], conditioning_from: ['3', 0], conditioning_to_strength: 0 }) }));
    await run(rt, base(['3', 0], 'plain-b'));
    expect(maxDiff(samples('avg-0'), samples('plain-b'))).toBeLessThan(1e-4);
  }, 120_000);

  it('SetMask with a partial mask and mask bounds changes the result', async () => {
    await run(
      rt,
      base(['12', 0], 'mask-part', {
        '9': n('SolidMask', { value: 1, width: 32, height: 48 }),
        '8': n('SolidMask', { value: 0, width: 64, height: 48 }),
        '7': n('ImagePadForOutpaint', { image: ['6', 0], left: 0, top: 0, right: 32, bottom: 0, feathering: 0 }),
        '6': n('MaskToImage', { mask: ['9', 0] }),
        '10': n('ConditioningSetMask', { conditioning: ['3', 0], mask: ['7', 1], strength: 1, set_cond_area: 'mask bounds' }),
        '12': n('ConditioningCombine', { conditioning_1: ['2', 0], conditioning_2: ['10', 0] }),
      }),
    );
    expect(maxDiff(samples('mask-part'), plain)).toBeGreaterThan(1e-2);
  }, 120_000);

  it('SetTimestepRange: a range that never starts adds nothing, one over the first half of sampling acts', async () => {
    await run(
      rt,
      base(['12', 0], 'range-never', {
        '10': n('ConditioningSetTimestepRange', { conditioning: ['3', 0], start: 1, end: 1 }),
        '12': n('ConditioningCombine', { conditioning_1: ['2', 0], conditioning_2: ['10', 0] }),
      }),
    );
    expect(maxDiff(samples('range-never'), plain)).toBeLessThan(1e-4);
    await run(
      rt,
      base(['12', 0], 'range-early', {
        '10': n('ConditioningSetTimestepRange', { conditioning: ['3', 0], start: 0, end: 0.5 }),
        '12': n('ConditioningCombine', { conditioning_1: ['2', 0], conditioning_2: ['10', 0] }),
      }),
    );
    expect(maxDiff(samples('range-early'), plain)).toBeGreaterThan(1e-2);
  }, 120_000);

  it('ConditioningZeroOut gives zero context and pooled output, and sampling with it as negative works', async () => {
    await run(rt, base(['2', 0], 'zero-neg', { '10': n('ConditioningZeroOut', { conditioning: ['4', 0] }), '11': n('TestCapture', { value: ['10', 0], key: 'zero' }) }, ['10', 0]));
    const z = captured.get('zero') as ConditioningValue;
    expect(z.context.every((v) => v === 0)).toBe(true);
    expect(z.pooled?.every((v) => v === 0) ?? true).toBe(true);
    expect(maxDiff(samples('zero-neg'), plain)).toBeGreaterThan(1e-3);
  }, 120_000);

  it('InstructPixToPixConditioning encodes the image into both sides and gives an empty latent of its size', async () => {
    const prompt: ApiPrompt = {
      '1': n('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT }),
      '2': n('CLIPTextEncode', { text: 'make it snow', clip: ['1', 1] }),
      '4': n('CLIPTextEncode', { text: 'blurry', clip: ['1', 1] }),
      '6': n('LoadImage', { image: 'resflow-demo-input.png' }),
      '7': n('ImageScale', { image: ['6', 0], upscale_method: 'area', width: 68, height: 52, crop: 'disabled' }),
      '10': n('InstructPixToPixConditioning', { positive: ['2', 0], negative: ['4', 0], vae: ['1', 2], pixels: ['7', 0] }),
      '20': n('KSampler', { model: ['1', 0], seed: 7, steps: 2, cfg: 6, sampler_name: 'euler', scheduler: 'normal', positive: ['10', 0], negative: ['10', 1], latent_image: ['10', 2], denoise: 1 }),
      '21': n('TestCapture', { value: ['20', 0], key: 'ip2p' }),
      '22': n('TestCapture', { value: ['10', 0], key: 'ip2p-cond' }),
    };
    await run(rt, prompt);
    const cond = captured.get('ip2p-cond') as ConditioningValue;
    // 68x52 is cropped to 64x48 before encoding; the demo VAE downsamples by 8.
    expect(cond.concatLatent?.shape).toEqual([1, 4, 6, 8]);
    expect((captured.get('ip2p') as LatentValue).samples.shape).toEqual([1, 4, 6, 8]);
  }, 120_000);
});
