import { describe, expect, it } from 'vitest';
import { broadcastHint, makeCfgDenoiser } from '../../runtime/sampling/cfg.js';
import { ModelSampling } from '../../runtime/sampling/model-sampling.js';
import type { CondBatch, Conditioning, ControlNetApplication, EpsModel, Shape4, StepInfo } from '../../runtime/sampling/types.js';

const ms = new ModelSampling();
const STEP: StepInfo = { step: 0, totalSteps: 1, sigmas: Float32Array.from([1, 0]) };

interface Call {
  xIn: Float32Array;
  shape: Shape4;
  timestep: number;
  cond: CondBatch;
}

/** Eps = per batch item, the mean of its context (so cond and uncond differ predictably). */
function recordingModel(calls: Call[]): EpsModel {
  return async (xIn, shape, timestep, cond) => {
    calls.push({ xIn: Float32Array.from(xIn), shape, timestep, cond });
    const [b, tokens, dim] = cond.contextShape;
    const item = xIn.length / shape[0];
    const out = new Float32Array(xIn.length);
    for (let i = 0; i < b; i++) {
      let m = 0;
      for (let k = 0; k < tokens * dim; k++) m += cond.context[i * tokens * dim + k]!;
      out.fill(m / (tokens * dim), i * item, (i + 1) * item);
    }
    return out;
  };
}

function ctx(value: number, tokens = 77, dim = 8, batch = 1): Conditioning {
  return { context: new Float32Array(batch * tokens * dim).fill(value), contextShape: [batch, tokens, dim] };
}

const shape: Shape4 = [1, 4, 2, 2];
const x = Float32Array.from({ length: 16 }, (_, i) => i - 8);

describe('CFG denoiser', () => {
  it('runs [uncond, cond] as one batch and combines denoised with the scale', async () => {
    const calls: Call[] = [];
    const sigma = ms.sigmas[600]!;
    const d = makeCfgDenoiser({ model: recordingModel(calls), positive: ctx(0.5), negative: ctx(-0.25), cfg: 7.5, modelSampling: ms, shape });
    const out = await d(x, sigma, STEP);
    expect(calls).toHaveLength(1);
    const call = calls[0]!;
    expect(call.shape).toEqual([2, 4, 2, 2]);
    expect(call.timestep).toBe(600);
    expect(call.cond.condOrUncond).toEqual(['uncond', 'cond']);
    expect(call.cond.context[0]).toBe(-0.25);
    expect(call.cond.context[77 * 8]).toBe(0.5);
    const c = Math.sqrt(sigma * sigma + 1);
    expect(call.xIn[3]).toBeCloseTo(x[3]! / c, 6);
    expect(call.xIn[16 + 3]).toBeCloseTo(x[3]! / c, 6);
    for (let i = 0; i < 16; i++) {
      const u = x[i]! - sigma * -0.25;
      const cd = x[i]! - sigma * 0.5;
      expect(out[i]).toBeCloseTo(u + (cd - u) * 7.5, 4);
    }
  });

  it('skips the negative pass when cfg is 1', async () => {
    const calls: Call[] = [];
    const d = makeCfgDenoiser({ model: recordingModel(calls), positive: ctx(0.5), negative: ctx(-0.25), cfg: 1, modelSampling: ms, shape });
    const out = await d(x, 2, STEP);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.shape).toEqual(shape);
    expect(calls[0]!.cond.condOrUncond).toEqual(['cond']);
    expect(out[0]).toBeCloseTo(x[0]! - 2 * 0.5, 5);
  });

  it('repeats the shorter context to the lcm of the token lengths', async () => {
    const calls: Call[] = [];
    const pos: Conditioning = { context: Float32Array.from({ length: 77 * 2 }, (_, i) => i), contextShape: [1, 77, 2] };
    const d = makeCfgDenoiser({ model: recordingModel(calls), positive: pos, negative: ctx(1, 154, 2), cfg: 3, modelSampling: ms, shape });
    await d(x, 2, STEP);
    expect(calls).toHaveLength(1);
    const c = calls[0]!.cond;
    expect(c.contextShape).toEqual([2, 154, 2]);
    const condPart = c.context.subarray(154 * 2);
    expect(Array.from(condPart.subarray(0, 154))).toEqual(Array.from(pos.context));
    expect(Array.from(condPart.subarray(154))).toEqual(Array.from(pos.context));
  });

  it('runs the halves separately when padding would exceed 4x (cond first, as ComfyUI)', async () => {
    const calls: Call[] = [];
    const d = makeCfgDenoiser({ model: recordingModel(calls), positive: ctx(0.5, 77), negative: ctx(-0.25, 385), cfg: 2, modelSampling: ms, shape });
    const out = await d(x, 2, STEP);
    expect(calls.map((c) => c.cond.condOrUncond)).toEqual([['cond'], ['uncond']]);
    expect(calls[1]!.cond.contextShape).toEqual([1, 385, 8]);
    const u = x[0]! - 2 * -0.25;
    const cd = x[0]! - 2 * 0.5;
    expect(out[0]).toBeCloseTo(u + (cd - u) * 2, 5);
  });

  it('repeats batch-1 contexts to the latent batch', async () => {
    const calls: Call[] = [];
    const shape2: Shape4 = [2, 4, 2, 2];
    const d = makeCfgDenoiser({ model: recordingModel(calls), positive: ctx(0.5), negative: ctx(-0.25), cfg: 7, modelSampling: ms, shape: shape2 });
    await d(new Float32Array(32), 2, STEP);
    const c = calls[0]!;
    expect(c.shape).toEqual([4, 4, 2, 2]);
    expect(c.cond.contextShape).toEqual([4, 77, 8]);
    const per = 77 * 8;
    expect([0, 1, 2, 3].map((i) => c.cond.context[i * per])).toEqual([-0.25, -0.25, 0.5, 0.5]);
  });

  it('validates its inputs', () => {
    const base = { model: recordingModel([]), modelSampling: ms, shape };
    expect(() => makeCfgDenoiser({ ...base, positive: ctx(0, 77, 8), negative: ctx(0, 77, 16), cfg: 7 })).toThrow(/width/);
    expect(() => makeCfgDenoiser({ ...base, positive: ctx(0), negative: ctx(0), cfg: -1 })).toThrow(/cfg/);
    expect(() => makeCfgDenoiser({ ...base, positive: { context: new Float32Array(3), contextShape: [1, 77, 8] }, negative: ctx(0), cfg: 7 })).toThrow(/context/);
  });
});

describe('ControlNet hooks', () => {
  const hint = (v: number): ControlNetApplication['hint'] => new Float32Array(3 * 16 * 16).fill(v);
  const app = (name: string, start = 0, end = 1, strength = 0.7): ControlNetApplication => ({
    controlNet: { name },
    hint: hint(1),
    hintShape: [1, 3, 16, 16],
    strength,
    startPercent: start,
    endPercent: end,
  });

  it('is active only inside the percent window (percent_to_sigma bounds)', async () => {
    const calls: Call[] = [];
    const a = app('a', 0.25, 0.75);
    const d = makeCfgDenoiser({ model: recordingModel(calls), positive: { ...ctx(0), controls: [a] }, negative: { ...ctx(0), controls: [a] }, cfg: 7, modelSampling: ms, shape });
    const hi = ms.percentToSigma(0.25);
    const lo = ms.percentToSigma(0.75);
    for (const sigma of [14.6, hi * 1.01, hi, (hi + lo) / 2, lo, lo * 0.99, 0.03]) {
      calls.length = 0;
      await d(x, sigma, STEP);
      const active = Math.fround(sigma) <= hi && Math.fround(sigma) >= lo;
      expect(calls).toHaveLength(1);
      expect(calls[0]!.cond.controls.length, `sigma ${sigma}`).toBe(active ? 1 : 0);
    }
  });

  it('passes chained ControlNets in order with hints broadcast to the call batch', async () => {
    const calls: Call[] = [];
    const chain = [app('first', 0, 1, 0.7), app('second', 0, 1, 0.3)];
    const d = makeCfgDenoiser({ model: recordingModel(calls), positive: { ...ctx(0), controls: chain }, negative: { ...ctx(0), controls: chain }, cfg: 7, modelSampling: ms, shape });
    await d(x, 5, STEP);
    const controls = calls[0]!.cond.controls;
    expect(controls.map((c) => [c.controlNet.name, c.strength])).toEqual([
      ['first', 0.7],
      ['second', 0.3],
    ]);
    expect(controls[0]!.hintShape).toEqual([2, 3, 16, 16]);
    expect(controls[0]!.hint.length).toBe(2 * 3 * 16 * 16);
  });

  it('runs cond and uncond separately when only the positive side has a ControlNet', async () => {
    const calls: Call[] = [];
    const d = makeCfgDenoiser({ model: recordingModel(calls), positive: { ...ctx(0), controls: [app('p')] }, negative: ctx(0), cfg: 7, modelSampling: ms, shape });
    await d(x, 5, STEP);
    expect(calls.map((c) => [c.cond.condOrUncond, c.cond.controls.length])).toEqual([
      [['cond'], 1],
      [['uncond'], 0],
    ]);
  });

  it('broadcast_image_to: per-chunk hints repeat per chunk', () => {
    const h = Float32Array.from([1, 2]); // two 1x1x1 images
    const out = broadcastHint(h, [2, 1, 1, 1], 6, 2);
    expect(Array.from(out.data)).toEqual([1, 2, 1, 1, 2, 1]);
    expect(out.shape).toEqual([6, 1, 1, 1]);
    expect(Array.from(broadcastHint(Float32Array.from([7]), [1, 1, 1, 1], 4, 2).data)).toEqual([7, 7, 7, 7]);
  });
});
