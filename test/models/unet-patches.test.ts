import { describe, expect, it } from 'vitest';
import { bislerpAxis, fourierLowPass, interpMatrix, pyRound } from '../../runtime/models/unet/resample-weights.js';
import { randomDivisor } from '../../runtime/models/unet/patches.js';
import { globalTorchRandint } from '../../runtime/sampling/global-randint.js';
import { Mt19937 } from '../../runtime/sampling/torch-rng.js';

/** ComfyUI's Fourier_filter(threshold 1) spelled out with a naive 2-D DFT, fftshift and the Python slice. */
function fourierFilterDirect(x: Float64Array, H: number, W: number, scale: number): Float64Array {
  const re = new Float64Array(H * W);
  const im = new Float64Array(H * W);
  for (let u = 0; u < H; u++)
    for (let v = 0; v < W; v++)
      for (let a = 0; a < H; a++)
        for (let b = 0; b < W; b++) {
          const ang = -2 * Math.PI * ((u * a) / H + (v * b) / W);
          re[u * W + v] += x[a * W + b]! * Math.cos(ang);
          im[u * W + v] += x[a * W + b]! * Math.sin(ang);
        }
  // fftshift: shifted[j] = X[(j - n//2) mod n]; the mask covers shifted rows/cols [n//2 - 1, n//2 + 1).
  const masked = (n: number) => {
    const s = new Set<number>();
    let from = Math.floor(n / 2) - 1;
    if (from < 0) from += n;
    for (let j = from; j < Math.min(Math.floor(n / 2) + 1, n); j++) s.add((((j - Math.floor(n / 2)) % n) + n) % n);
    return s;
  };
  const [mh, mw] = [masked(H), masked(W)];
  for (const u of mh) for (const v of mw) {
    re[u * W + v] *= scale;
    im[u * W + v] *= scale;
  }
  const out = new Float64Array(H * W);
  for (let a = 0; a < H; a++)
    for (let b = 0; b < W; b++) {
      let s = 0;
      for (let u = 0; u < H; u++)
        for (let v = 0; v < W; v++) {
          const ang = 2 * Math.PI * ((u * a) / H + (v * b) / W);
          s += re[u * W + v]! * Math.cos(ang) - im[u * W + v]! * Math.sin(ang);
        }
      out[a * W + b] = s / (H * W);
    }
  return out;
}

describe('UNet patch constants', () => {
  it("FreeU's separable filter matrices equal the FFT filter at odd, even and tiny sizes", () => {
    for (const [H, W] of [[1, 1], [1, 4], [2, 3], [3, 5], [4, 6], [7, 4]] as const) {
      const x = Float64Array.from({ length: H * W }, (_, i) => Math.sin(i * 1.7) + 0.3 * i);
      const s = 0.2;
      const fy = fourierLowPass(H);
      const fx = fourierLowPass(W);
      const got = new Float64Array(H * W);
      for (let a = 0; a < H; a++)
        for (let c = 0; c < W; c++) {
          let acc = 0;
          for (let b = 0; b < H; b++) for (let d = 0; d < W; d++) acc += (fy.re[a * H + b]! * fx.re[c * W + d]! - fy.im[a * H + b]! * fx.im[c * W + d]!) * x[b * W + d]!;
          got[a * W + c] = x[a * W + c]! + (s - 1) * acc;
        }
      const want = fourierFilterDirect(x, H, W, s);
      for (let i = 0; i < got.length; i++) expect(got[i]).toBeCloseTo(want[i]!, 10);
    }
  });

  it('resize matrices follow torch: area averages, nearest-exact picks, bilinear/bicubic rows sum to 1', () => {
    expect(Array.from(interpMatrix('area', 5, 2))).toEqual([1 / 3, 1 / 3, 1 / 3, 0, 0, 0, 0, 1 / 3, 1 / 3, 1 / 3].map(Math.fround));
    // 3 -> 5: src = floor((dst + 0.5) * 0.6) = 0, 0, 1, 2, 2
    expect(Array.from(interpMatrix('nearest-exact', 3, 5))).toEqual([1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1]);
    for (const m of ['bilinear', 'bicubic'] as const) {
      const w = interpMatrix(m, 5, 3);
      for (let r = 0; r < 3; r++) expect(w.slice(r * 5, r * 5 + 5).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    }
    // Identity size: exactly the identity (bicubic's taps at t = 0 are 0, 1, 0, 0).
    expect(Array.from(interpMatrix('bicubic', 3, 3))).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1]);
  });

  it("bislerp's axis data and Python rounding", () => {
    const d = bislerpAxis(4, 2);
    expect(Array.from(d.i1)).toEqual([0n, 2n]);
    expect(Array.from(d.i2)).toEqual([1n, 3n]);
    expect(Array.from(d.ratio)).toEqual([0.5, 0.5]);
    expect([0.5, 1.5, 2.5, 3.5, -0.5, 2.4999].map((v) => pyRound(v) + 0)).toEqual([0, 2, 2, 4, 0, 2]);
  });

  it("HyperTile's random_divisor: exclusive high, a draw even with two options, none with one", () => {
    const draws: number[] = [];
    const r = (n: number) => (draws.push(n), n - 1);
    expect(randomDivisor(16, 4, 3, r)).toBe(2); // options [4, 2, 1], idx < 2
    expect(randomDivisor(6, 4, 3, r)).toBe(1); // options [1]: no draw
    expect(randomDivisor(8, 4, 3, r)).toBe(2); // options [2, 1]: a draw of randint(0, 1) = 0
    expect(draws).toEqual([2, 1]);
  });

  it('the global generator after prepare_noise: numel (+16 when not a multiple of 16) outputs skipped', () => {
    const seq = (skip: number) => {
      const mt = new Mt19937(42);
      for (let i = 0; i < skip; i++) mt.nextU32();
      return [mt.nextU32() % 7, mt.nextU32() % 3];
    };
    const a = globalTorchRandint(42, 1024);
    expect([a(7), a(3)]).toEqual(seq(1024));
    const b = globalTorchRandint(42, 100);
    expect([b(7), b(3)]).toEqual(seq(116));
  });
});
