import { describe, expect, it } from 'vitest';
import { multiDiffusionEpsModel, windowOrigins, windowsFor } from '../../runtime/pipeline/multidiffusion.js';
import type { CondBatch, EpsModel, Shape4 } from '../../runtime/sampling/types.js';

const cond = (batch: number, controls: CondBatch['controls'] = []): CondBatch => ({
  context: Float32Array.from({ length: batch * 3 * 2 }, (_, i) => i),
  contextShape: [batch, 3, 2],
  controls,
  condOrUncond: batch === 2 ? ['uncond', 'cond'] : ['cond'],
});

/** x[b, c, y, x] = 100·b + 10·c + column: easy to read back which cells a window saw. */
function ramp(shape: Shape4): Float32Array {
  const [B, C, H, W] = shape;
  const out = new Float32Array(B * C * H * W);
  for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) out[((b * C + c) * H + y) * W + x] = 100 * b + 10 * c + x;
  return out;
}

describe('MultiDiffusion windows', () => {
  it('cover the axis with origins every stride and a last window flush with the edge', () => {
    expect(windowOrigins(32, 16, 8)).toEqual([0, 8, 16]);
    expect(windowOrigins(24, 16, 16)).toEqual([0, 8]);
    expect(windowOrigins(16, 16, 8)).toEqual([0]);
    expect(windowOrigins(8, 16, 8)).toEqual([0]);
    expect(windowOrigins(33, 16, 8)).toEqual([0, 8, 16, 17]);
    // A window larger than the latent shrinks to it on that axis only.
    expect(windowsFor(8, 32, { window: [16, 16], stride: [8, 8] })).toEqual([0, 8, 16].map((x) => ({ y: 0, x, h: 8, w: 16 })));
  });

  it('a model that sees each cell on its own gives the same prediction tiled or not', async () => {
    const pointwise: EpsModel = async (x, _s, t) => x.map((v) => 0.5 * v + t);
    const shape: Shape4 = [2, 4, 12, 20];
    const x = Float32Array.from({ length: 2 * 4 * 12 * 20 }, (_, i) => Math.sin(i));
    const whole = await pointwise(x, shape, 7, cond(2));
    const tiled = await multiDiffusionEpsModel(pointwise, { window: [8, 8], stride: [4, 4], batch: 3 })(x, shape, 7, cond(2));
    expect(tiled.length).toBe(whole.length);
    for (let i = 0; i < whole.length; i++) expect(tiled[i]).toBeCloseTo(whole[i]!, 5);
  });

  it('averages the windows where they overlap (known answer)', async () => {
    // Each window predicts the mean of what it sees: columns 0-3 → 1.5, columns 2-5 → 3.5.
    const windowMean: EpsModel = async (x, [B, C, H, W]) => {
      const out = new Float32Array(x.length);
      const n = H * W;
      for (let p = 0; p < B * C; p++) out.fill(x.subarray(p * n, (p + 1) * n).reduce((a, v) => a + v, 0) / n, p * n, (p + 1) * n);
      return out;
    };
    const shape: Shape4 = [1, 1, 4, 6];
    const eps = await multiDiffusionEpsModel(windowMean, { window: [4, 4], stride: [2, 2], batch: 4 })(ramp(shape), shape, 1, cond(1));
    expect([...eps.subarray(0, 6)]).toEqual([1.5, 1.5, 2.5, 2.5, 3.5, 3.5]);
    expect([...eps.subarray(18, 24)]).toEqual([1.5, 1.5, 2.5, 2.5, 3.5, 3.5]);
  });

  it('batches windows: the conditioning repeats per window, each call holds at most `batch` windows', async () => {
    const calls: Array<{ shape: Shape4; cond: CondBatch; first: number }> = [];
    const spy: EpsModel = async (x, shape, _t, c) => {
      calls.push({ shape, cond: c, first: x[0]! });
      return new Float32Array(x.length);
    };
    const shape: Shape4 = [2, 1, 8, 24];
    await multiDiffusionEpsModel(spy, { window: [8, 8], stride: [8, 8], batch: 2 })(ramp(shape), shape, 3, cond(2));
    expect(calls.map((c) => c.shape)).toEqual([[4, 1, 8, 8], [2, 1, 8, 8]]);
    expect(calls.map((c) => c.first)).toEqual([0, 16]);
    expect(calls[0]!.cond.contextShape).toEqual([4, 3, 2]);
    expect(calls[0]!.cond.condOrUncond).toEqual(['uncond', 'cond', 'uncond', 'cond']);
    expect([...calls[0]!.cond.context.subarray(12, 24)]).toEqual([...cond(2).context]);
    expect(calls[1]!.cond.contextShape).toEqual([2, 3, 2]);
  });

  it('crops ControlNet hints with the window (hints at 8× the latent)', async () => {
    const [H, W] = [2, 4];
    const hint = new Float32Array(3 * 16 * 32);
    for (let c = 0; c < 3; c++) for (let y = 0; y < 16; y++) for (let x = 0; x < 32; x++) hint[(c * 16 + y) * 32 + x] = x;
    const seen: number[][] = [];
    const spy: EpsModel = async (x, _s, _t, c) => {
      const h = c.controls[0]!;
      expect(h.hintShape).toEqual([2, 3, 16, 16]);
      seen.push([h.hint[0]!, h.hint[15]!, h.hint[3 * 16 * 16]!]);
      return new Float32Array(x.length);
    };
    const control = { controlNet: {}, hint, hintShape: [1, 3, 16, 32] as Shape4, strength: 1 };
    await multiDiffusionEpsModel(spy, { window: [2, 2], stride: [2, 2], batch: 2 })(new Float32Array(4 * H * W), [1, 4, H, W], 1, cond(1, [control]));
    expect(seen).toEqual([[0, 15, 16]]);
  });

  it('refuses a stride larger than the window', () => {
    const m: EpsModel = async (x) => x;
    expect(() => multiDiffusionEpsModel(m, { window: [8, 8], stride: [9, 8], batch: 1 })).toThrow(/larger than the window/);
    expect(() => multiDiffusionEpsModel(m, { window: [8, 0], stride: [4, 4], batch: 1 })).toThrow(/positive integers/);
  });
});
