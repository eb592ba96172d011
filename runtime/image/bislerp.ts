/**
 * ComfyUI's bislerp latent resize: separable (W, then H) spherical interpolation of the channel vectors,
 * with source positions and ratios taken from a float32 bilinear interpolation of the index ramp.
 */
import type { Tensor4 } from './upscale.js';

const f32 = Math.fround;

/** For each output index: the two source indices and the ratio between them. */
function bilinearData(oldLen: number, newLen: number): { i1: Int32Array; i2: Int32Array; r: Float32Array } {
  const scale = f32(oldLen / newLen);
  const interp = (values: (i: number) => number, d: number) => {
    const src = Math.max(0, f32(f32(scale * f32(d + 0.5)) - 0.5));
    const a = Math.floor(src);
    const l = f32(src - a);
    const b = a < oldLen - 1 ? a + 1 : a;
    return f32(f32(f32(1 - l) * values(a)) + f32(l * values(b)));
  };
  const i1 = new Int32Array(newLen);
  const i2 = new Int32Array(newLen);
  const r = new Float32Array(newLen);
  for (let d = 0; d < newLen; d++) {
    const c1 = interp((i) => i, d);
    r[d] = f32(c1 - Math.floor(c1));
    i1[d] = Math.trunc(c1);
    i2[d] = Math.trunc(interp((i) => (i === oldLen - 1 ? i : i + 1), d));
  }
  return { i1, i2, r };
}

/** slerp of two channel vectors with ComfyUI's norm scaling and edge cases; writes into out. */
function slerp(v1: Float32Array, v2: Float32Array, r: number, out: Float32Array): void {
  const c = v1.length;
  let n1 = 0;
  let n2 = 0;
  for (let k = 0; k < c; k++) {
    n1 += v1[k]! * v1[k]!;
    n2 += v2[k]! * v2[k]!;
  }
  n1 = f32(Math.sqrt(n1));
  n2 = f32(Math.sqrt(n2));
  let dot = 0;
  for (let k = 0; k < c; k++) {
    const a = n1 === 0 ? 0 : f32(v1[k]! / n1);
    const b = n2 === 0 ? 0 : f32(v2[k]! / n2);
    dot += a * b;
  }
  dot = f32(dot);
  if (dot > 1 - 1e-5) {
    out.set(v1);
    return;
  }
  if (dot < 1e-5 - 1) {
    for (let k = 0; k < c; k++) out[k] = f32(f32(v1[k]! * f32(1 - r)) + f32(v2[k]! * r));
    return;
  }
  const omega = Math.acos(dot);
  const so = Math.sin(omega);
  const s1 = Math.sin((1 - r) * omega) / so;
  const s2 = Math.sin(r * omega) / so;
  const scale = n1 * (1 - r) + n2 * r;
  for (let k = 0; k < c; k++) {
    const a = n1 === 0 ? 0 : v1[k]! / n1;
    const b = n2 === 0 ? 0 : v2[k]! / n2;
    out[k] = (s1 * a + s2 * b) * scale;
  }
}

/** One pass along an axis of length `len` (W: stride 1; H: stride W) for every other position. */
function pass(t: Tensor4, axis: 2 | 3, newLen: number): Tensor4 {
  const [B, C, H, W] = t.shape;
  const oldLen = axis === 3 ? W : H;
  const { i1, i2, r } = bilinearData(oldLen, newLen);
  const oh = axis === 2 ? newLen : H;
  const ow = axis === 3 ? newLen : W;
  const out = new Float32Array(B * C * oh * ow);
  const v1 = new Float32Array(C);
  const v2 = new Float32Array(C);
  const res = new Float32Array(C);
  for (let b = 0; b < B; b++) {
    for (let y = 0; y < oh; y++) {
      for (let x = 0; x < ow; x++) {
        const d = axis === 3 ? x : y;
        const y1 = axis === 2 ? i1[d]! : y;
        const y2 = axis === 2 ? i2[d]! : y;
        const x1 = axis === 3 ? i1[d]! : x;
        const x2 = axis === 3 ? i2[d]! : x;
        for (let c = 0; c < C; c++) {
          v1[c] = t.data[((b * C + c) * H + y1) * W + x1]!;
          v2[c] = t.data[((b * C + c) * H + y2) * W + x2]!;
        }
        slerp(v1, v2, r[d]!, res);
        for (let c = 0; c < C; c++) out[((b * C + c) * oh + y) * ow + x] = res[c]!;
      }
    }
  }
  return { data: out, shape: [B, C, oh, ow] };
}

export function bislerp(t: Tensor4, width: number, height: number): Tensor4 {
  return pass(pass(t, 3, width), 2, height);
}
