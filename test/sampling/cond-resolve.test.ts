import { describe, expect, it } from 'vitest';
import { condEntries, pyRound } from '../../runtime/sampling/cond-entries.js';
import { combineConds, setAreaCells, setAreaFraction, setMask, setTimestepRange } from '../../runtime/sampling/cond-ops.js';
import { condActive, resolveCondSides, resolveConds } from '../../runtime/sampling/cond-resolve.js';
import { inpaintConcat, maskedDenoiser } from '../../runtime/sampling/inpaint.js';
import { ModelSampling, SD15_LATENT_FORMAT, SDXL_LATENT_FORMAT } from '../../runtime/sampling/model-sampling.js';
import type { Conditioning, Shape4, StepInfo } from '../../runtime/sampling/types.js';

const ms = new ModelSampling();
const shape: Shape4 = [1, 4, 8, 12];
const ctx = (v: number, tokens = 77): Conditioning => ({ context: new Float32Array(tokens * 4).fill(v), contextShape: [1, tokens, 4] });

describe('conditioning lists as the sampler resolves them', () => {
  it('Python rounding: halves to even', () => {
    expect([0.5, 1.5, 2.5, 4.5, -2.5, 4.4, 4.6].map(pyRound)).toEqual([0, 2, 2, 4, -2, 4, 5]);
  });

  it('Combine keeps entries in order; options apply to every entry', () => {
    const c = setAreaCells(combineConds(ctx(1), ctx(2)), 64, 32, 8, 16, 0.5);
    const e = condEntries(c);
    expect(e.map((x) => x.context[0])).toEqual([1, 2]);
    expect(e.every((x) => x.area?.height === 4 && x.area.width === 8 && x.area.y === 2 && x.area.x === 1 && x.strength === 0.5)).toBe(true);
  });

  it('fractional areas round half to even against the latent; an area entry gets a twin with the other side prompt', () => {
    const pos = combineConds(ctx(1), setAreaFraction(ctx(2), 0.7, 0.5, 0.375, 0.5, 1));
    const { cond, uncond } = resolveConds(pos, ctx(-1), { shape, ms });
    expect(cond.map((c) => c.area)).toEqual([undefined, [4, 8, 4, 4]]);
    expect(uncond).toHaveLength(2);
    expect(uncond[1]!.area).toEqual([4, 8, 4, 4]);
    expect(uncond[1]!.model.context[0]).toBe(-1);
  });

  it("the twin borrows the smallest containing area's prompt, and none is added for an identical area", () => {
    const neg = combineConds(setAreaCells(ctx(-1), 96, 64, 0, 0, 1), setAreaCells(ctx(-2), 48, 32, 32, 16, 1));
    const pos = setAreaCells(ctx(1), 16, 16, 40, 24, 1);
    const r = resolveConds(pos, neg, { shape, ms });
    expect(r.uncond).toHaveLength(3);
    expect(r.uncond[2]!.model.context[0]).toBe(-2);
    // The negative entries' areas are not inside the positive one: no twins on the positive side.
    expect(r.cond).toHaveLength(1);
    const same = resolveConds(setAreaCells(ctx(1), 48, 32, 32, 16, 1), setAreaCells(ctx(-2), 48, 32, 32, 16, 1), { shape, ms });
    expect(same.uncond).toHaveLength(1);
    expect(same.cond).toHaveLength(1);
  });

  it('three sides (DualCFGGuider): an area entry of the middle side is twinned on both others', () => {
    const sides = resolveCondSides([ctx(1), setAreaCells(ctx(2), 32, 32, 0, 0, 1), ctx(-1)], { shape, ms });
    expect(sides.map((s) => s.length)).toEqual([2, 1, 2]);
    expect(sides[0]![1]!.model.context[0]).toBe(1);
    expect(sides[2]![1]!.model.context[0]).toBe(-1);
    expect(sides[2]![1]!.area).toEqual([4, 4, 0, 0]);
  });

  it("'mask bounds' takes the mask's bounding box, at least 8 cells a side", () => {
    const m = new Float32Array(8 * 12);
    m[3 * 12 + 5] = 1;
    m[4 * 12 + 6] = 0.5;
    const pos = setMask(ctx(1), { data: m, shape: [1, 8, 12] }, true, 0.8);
    const { cond } = resolveConds(pos, ctx(-1), { shape, ms });
    expect(cond[0]!.area).toEqual([8, 8, 3, 5]);
    expect(cond[0]!.maskStrength).toBe(0.8);
  });

  it('timestep ranges become sigma windows', () => {
    const { cond } = resolveConds(setTimestepRange(ctx(1), 0.3, 0.8), ctx(-1), { shape, ms });
    const c = cond[0]!;
    expect(c.startSigma).toBeCloseTo(3.325068950653076, 5);
    expect(condActive(c, 14.6)).toBe(false);
    expect(condActive(c, 1.0)).toBe(true);
    expect(condActive(c, 0.3)).toBe(false);
  });
});

describe('inpainting-model channels', () => {
  it('InstructPix2Pix (C extra channels): SD1.x takes the image latent unscaled, SDXL through process_latent_in', () => {
    const concatLatent = { data: new Float32Array(4 * 8 * 12).fill(2), shape };
    const sd1 = inpaintConcat({ channels: 4, shape, latentFormat: SD15_LATENT_FORMAT, latent: new Float32Array(4 * 96) });
    expect(sd1({ ...ctx(1), concatLatent })[0]).toBe(2);
    expect(sd1(ctx(1)).every((v) => v === 0)).toBe(true);
    const xl = inpaintConcat({ channels: 4, shape, latentFormat: SDXL_LATENT_FORMAT, latent: new Float32Array(4 * 96) });
    expect(xl({ ...ctx(1), concatLatent })[0]).toBeCloseTo(2 * 0.13025, 6);
  });

  it('mask + masked image (C + 1): without any mask, ones and the blank-image latent', () => {
    const f = inpaintConcat({ channels: 5, shape, latentFormat: SD15_LATENT_FORMAT, latent: new Float32Array(4 * 96) });
    const out = f(ctx(1));
    expect(out[0]).toBe(1);
    expect(out[96]).toBeCloseTo(0.8223, 6);
    expect(out[4 * 96]).toBeCloseTo(0.138, 6);
    expect(() => inpaintConcat({ channels: 3, shape, latentFormat: SD15_LATENT_FORMAT, latent: new Float32Array(4 * 96) })).toThrow(/extra input channels/);
  });
});

describe('calc_cond_batch through the CFG denoiser', () => {
  it('an area entry runs the model on its crop (with its twin) and is averaged in where it applies', async () => {
    const { makeCfgDenoiser } = await import('../../runtime/sampling/cfg.js');
    const shapes: number[][] = [];
    // eps = mean of each item's context, so every prompt has a known prediction.
    const model = async (xIn: Float32Array, s: Shape4, _t: number, cond: { context: Float32Array; contextShape: [number, number, number] }) => {
      shapes.push([...s]);
      const [b, tokens, dim] = cond.contextShape;
      const out = new Float32Array(xIn.length);
      const item = xIn.length / s[0];
      for (let i = 0; i < b; i++) out.fill(cond.context[i * tokens * dim]!, i * item, (i + 1) * item);
      return out;
    };
    const sh: Shape4 = [1, 4, 2, 8];
    const pos = combineConds(ctx(0.5), setAreaCells(ctx(1.5), 32, 16, 0, 0, 1));
    const d = makeCfgDenoiser({ model, positive: pos, negative: ctx(-0.25), cfg: 3, modelSampling: ms, shape: sh });
    const x = Float32Array.from({ length: 64 }, (_, i) => i / 10);
    const sigma = 2;
    const out = await d(x, sigma, { step: 0, totalSteps: 1, sigmas: Float32Array.from([2, 0]) });
    expect(shapes).toEqual([
      [2, 4, 2, 8],
      [2, 4, 2, 4],
    ]);
    for (let i = 0; i < 64; i++) {
      const left = i % 8 < 4;
      const c = x[i]! - sigma * (left ? 1 : 0.5);
      const u = x[i]! - sigma * -0.25;
      expect(out[i]).toBeCloseTo(u + (c - u) * 3, 4);
    }
  });
});

describe("the old ControlNetApply's ControlNet on the negative side", () => {
  const app = { controlNet: { name: 'cn' }, hint: new Float32Array(3 * 16 * 16), hintShape: [1, 3, 16, 16] as Shape4, strength: 0.5 };
  it('plain negative entries borrow it unless one has its own', () => {
    const pos: Conditioning = { ...ctx(1), controls: [app], controlApplyToUncond: true };
    const r = resolveConds(pos, ctx(-1), { shape, ms });
    expect(r.uncond[0]!.controls.map((c) => c.app)).toEqual([app]);
    const own = { ...app, strength: 0.9 };
    const kept = resolveConds(pos, { ...ctx(-1), controls: [own] }, { shape, ms });
    expect(kept.uncond[0]!.controls.map((c) => c.app)).toEqual([own]);
    // ControlNetApplyAdvanced does not set the flag: the negative stays as given.
    const adv = resolveConds({ ...ctx(1), controls: [app] }, ctx(-1), { shape, ms });
    expect(adv.uncond[0]!.controls).toEqual([]);
  });
});

describe('CFG hooks for guiders', () => {
  it('combine replaces the CFG formula and sees both sides, also at cfg 1', async () => {
    const { makeCfgDenoiser } = await import('../../runtime/sampling/cfg.js');
    const model = async (xIn: Float32Array, s: Shape4, _t: number, cond: { context: Float32Array; contextShape: [number, number, number] }) => {
      const out = new Float32Array(xIn.length);
      const item = xIn.length / s[0];
      for (let i = 0; i < s[0]; i++) out.fill(cond.context[i * cond.contextShape[1] * cond.contextShape[2]]!, i * item, (i + 1) * item);
      return out;
    };
    const sh: Shape4 = [1, 4, 2, 2];
    const seen: number[][] = [];
    const d = makeCfgDenoiser({
      model,
      positive: ctx(0.5),
      negative: ctx(-0.5),
      cfg: 1,
      modelSampling: ms,
      shape: sh,
      combine: ({ cond, uncond }) => {
        seen.push([cond[0]!, uncond[0]!]);
        return Float32Array.from(cond, (v, i) => v - uncond[i]!);
      },
    });
    const out = await d(new Float32Array(16), 1, { step: 0, totalSteps: 1, sigmas: Float32Array.from([1, 0]) });
    expect(seen).toEqual([[-0.5, 0.5]]);
    expect(out[0]).toBe(-1);
  });
});

describe('masked sampling (KSamplerX0Inpaint)', () => {
  it('holds x on the latent noising path outside the mask and returns the latent there; withUncond survives', async () => {
    const seenX: number[][] = [];
    const inner = Object.assign(
      async (x: Float32Array, _sigma: number, _step: StepInfo) => {
        seenX.push(Array.from(x));
        return Float32Array.from(x, (v) => v * 2);
      },
      { withUncond: async (x: Float32Array, _sigma: number, _step: StepInfo) => ({ denoised: Float32Array.from(x, (v) => v * 2), uncond: Float32Array.from(x, (v) => v + 100) }) },
    );
    const mask = Float32Array.from([1, 0]);
    const latent = Float32Array.from([5, 7]);
    const noise = Float32Array.from([1, -1]);
    const d = maskedDenoiser(inner, mask, latent, noise);
    const step = { step: 0, totalSteps: 1, sigmas: Float32Array.from([2, 0]) };
    const out = await d(Float32Array.from([3, 3]), 2, step);
    expect(seenX[0]).toEqual([3, 7 - 2]);
    expect(Array.from(out)).toEqual([6, 7]);
    const r = await d.withUncond(Float32Array.from([3, 3]), 2, step);
    expect(Array.from(r.denoised)).toEqual([6, 7]);
    expect(Array.from(r.uncond)).toEqual([103, 105]);
  });
});
