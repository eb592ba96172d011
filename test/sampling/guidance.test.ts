import { describe, expect, it } from 'vitest';
import { makeCfgDenoiser } from '../../runtime/sampling/cfg.js';
import { makeGuidedDenoiser } from '../../runtime/sampling/guidance.js';
import { ModelSampling } from '../../runtime/sampling/model-sampling.js';
import { rescaleCfg } from '../../runtime/sampling/rescale-cfg.js';
import type { CondBatch, EpsModel, Shape4, StepInfo } from '../../runtime/sampling/types.js';

const ms = new ModelSampling();
const shape: Shape4 = [1, 4, 2, 3];
const step: StepInfo = { step: 0, totalSteps: 1, sigmas: Float32Array.from([3, 0]) };
const ctx = (v: number) => ({ context: new Float32Array(77 * 8).fill(v), contextShape: [1, 77, 8] as [number, number, number] });

/** eps depends on the context value and on which half the call says it is, so mix-ups show. */
function model(kinds: string[][]): EpsModel {
  return async (xIn, s, _t, cond: CondBatch) => {
    kinds.push([...cond.condOrUncond]);
    const per = s[1] * s[2] * s[3];
    const out = new Float32Array(xIn.length);
    for (let i = 0; i < xIn.length; i++) {
      const item = Math.floor(i / per);
      const c = cond.context[item * 77 * 8]!;
      const chunk = Math.floor(item / (s[0] / cond.condOrUncond.length));
      out[i] = 0.3 * xIn[i]! + c * (1 + ((i % per) % 5)) + (cond.condOrUncond[chunk] === 'uncond' ? 0.01 : 0);
    }
    return out;
  };
}

describe('makeGuidedDenoiser', () => {
  const x = Float32Array.from({ length: 24 }, (_, i) => Math.sin(i) * 3);

  it('hands out the negative prediction next to the guided one, from the same batched evaluation', async () => {
    const kinds: string[][] = [];
    const g = makeGuidedDenoiser({ model: model(kinds), positive: ctx(0.5), negative: ctx(-0.25), cfg: 7, modelSampling: ms, shape });
    const ref = makeCfgDenoiser({ model: model([]), positive: ctx(0.5), negative: ctx(-0.25), cfg: 7, modelSampling: ms, shape });
    const { denoised, uncond } = await g.withUncond!(x, 3, step);
    const expected = await ref(x, 3, step);
    for (let i = 0; i < x.length; i++) expect(denoised[i]).toBeCloseTo(expected[i]!, 4);
    expect(kinds).toEqual([['uncond', 'cond']]);
    // uncond = x - sigma * eps(negative as the uncond half)
    const c = Math.sqrt(10);
    for (let i = 0; i < x.length; i++) expect(uncond[i]).toBeCloseTo(x[i]! - 3 * (0.3 * (x[i]! / c) - 0.25 * (1 + (i % 5)) + 0.01), 4);
    // The plain call is the ordinary batched CFG.
    kinds.length = 0;
    const plain = await g(x, 3, step);
    expect(kinds).toEqual([['uncond', 'cond']]);
    for (let i = 0; i < x.length; i++) expect(plain[i]).toBeCloseTo(expected[i]!, 4);
  });

  it('a CFG function replaces the formula; RescaleCFG at multiplier 0 is plain CFG, at 1 it rescales', async () => {
    const base = { model: model([]), positive: ctx(0.5), negative: ctx(-0.25), cfg: 5, modelSampling: ms, shape };
    const plain = await makeCfgDenoiser(base)(x, 3, step);
    const zero = await makeGuidedDenoiser({ ...base, cfgFunction: rescaleCfg(0) })(x, 3, step);
    const one = await makeGuidedDenoiser({ ...base, cfgFunction: rescaleCfg(1) })(x, 3, step);
    let dz = 0;
    let d1 = 0;
    for (let i = 0; i < x.length; i++) {
      dz = Math.max(dz, Math.abs(zero[i]! - plain[i]!));
      d1 = Math.max(d1, Math.abs(one[i]! - plain[i]!));
    }
    expect(dz).toBeLessThan(1e-4);
    expect(d1).toBeGreaterThan(1e-2);
  });

  it('with an area entry the negative prediction includes its twin (uncond run on the crop)', async () => {
    const { setAreaCells, combineConds } = await import('../../runtime/sampling/cond-ops.js');
    const kinds: string[][] = [];
    const positive = combineConds(ctx(0.5), setAreaCells(ctx(1), 16, 16, 8, 0, 1));
    const g = makeGuidedDenoiser({ model: model(kinds), positive, negative: ctx(-0.25), cfg: 1, modelSampling: ms, shape: [1, 4, 2, 3], cfgFunction: rescaleCfg(0) });
    const { uncond } = await g.withUncond!(x, 3, step);
    // Full-latent pair, then the 2x2 crop of the area entry with its negative twin.
    expect(kinds).toEqual([['uncond', 'cond'], ['uncond', 'cond']]);
    expect(uncond.length).toBe(24);
  });
});
