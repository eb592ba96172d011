/**
 * The per-size constants UNet patches feed to their graphs: 1-D resampling matrices for torch's
 * F.interpolate modes (align_corners False, no antialias), bislerp's gather indices and ratios, and the
 * real/imaginary parts of FreeU's Fourier filter as matrices. All are separable along H and W, so a patch
 * applies them as `M_h @ x @ M_w^T` whatever the image size, and the graph itself stays size-independent.
 */

export type LatentResizeMethod = 'nearest-exact' | 'bilinear' | 'area' | 'bicubic' | 'bislerp';
export const LATENT_RESIZE_METHODS: readonly LatentResizeMethod[] = ['nearest-exact', 'bilinear', 'area', 'bicubic', 'bislerp'];

const f32 = Math.fround;

/** Python's round(): half to even. */
export function pyRound(v: number): number {
  const fl = Math.floor(v);
  const d = v - fl;
  if (d < 0.5) return fl;
  if (d > 0.5) return fl + 1;
  return fl % 2 === 0 ? fl : fl + 1;
}

/** torch's cubic convolution weights (A = -0.75) for the 4 taps around a source position with fraction t. */
function cubicWeights(t: number): [number, number, number, number] {
  const A = -0.75;
  const c1 = (x: number) => ((A + 2) * x - (A + 3)) * x * x + 1;
  const c2 = (x: number) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return [c2(t + 1), c1(t), c1(1 - t), c2(2 - t)];
}

/**
 * Row-major [outN, inN] matrix of a 1-D resize, so `out = M @ in`. Linear modes only (not bislerp).
 * Source positions use torch's float32 scale `in/out`.
 */
export function interpMatrix(method: Exclude<LatentResizeMethod, 'bislerp'>, inN: number, outN: number): Float32Array {
  const m = new Float32Array(outN * inN);
  const scale = f32(inN / outN);
  const put = (o: number, i: number, w: number) => {
    const ii = Math.min(Math.max(i, 0), inN - 1);
    m[o * inN + ii] = f32(m[o * inN + ii]! + w);
  };
  for (let o = 0; o < outN; o++) {
    if (method === 'nearest-exact') {
      put(o, Math.min(Math.floor(f32((o + 0.5) * scale)), inN - 1), 1);
    } else if (method === 'area') {
      const start = Math.floor((o * inN) / outN);
      const end = Math.ceil(((o + 1) * inN) / outN);
      for (let i = start; i < end; i++) put(o, i, 1 / (end - start));
    } else if (method === 'bilinear') {
      const src = Math.max(f32(f32(scale * (o + 0.5)) - 0.5), 0);
      const i0 = Math.floor(src);
      const i1 = i0 + (i0 < inN - 1 ? 1 : 0);
      const l1 = f32(src - i0);
      put(o, i0, f32(1 - l1));
      put(o, i1, l1);
    } else if (method === 'bicubic') {
      const src = f32(f32(scale * (o + 0.5)) - 0.5);
      const i0 = Math.floor(src);
      const w = cubicWeights(f32(src - i0));
      for (let k = 0; k < 4; k++) put(o, i0 - 1 + k, w[k]!);
    } else {
      throw new Error(`unknown resize method "${method as string}"`);
    }
  }
  return m;
}

/** Transposes a row-major [rows, cols] matrix. */
export function transposed(m: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c]!;
  return t;
}

/**
 * ComfyUI's bislerp `generate_bilinear_data` along one axis: the bilinear resize of arange(n) gives the
 * first source index (truncated) and the blend ratio (fraction); the same resize of arange(n)+1 with the last
 * entry lowered by one gives the second index.
 */
export function bislerpAxis(inN: number, outN: number): { i1: BigInt64Array; i2: BigInt64Array; ratio: Float32Array } {
  const m = interpMatrix('bilinear', inN, outN);
  const resize = (v: Float32Array) =>
    Float32Array.from({ length: outN }, (_, o) => {
      let acc = 0;
      for (let i = 0; i < inN; i++) {
        const w = m[o * inN + i]!;
        if (w !== 0) acc = f32(acc + f32(w * v[i]!));
      }
      return acc;
    });
  const a = Float32Array.from({ length: inN }, (_, i) => i);
  const b = Float32Array.from({ length: inN }, (_, i) => (i === inN - 1 ? i : i + 1));
  const c1 = resize(a);
  const c2 = resize(b);
  return {
    i1: BigInt64Array.from(c1, (v) => BigInt(Math.trunc(v))),
    i2: BigInt64Array.from(c2, (v) => BigInt(Math.trunc(v))),
    ratio: Float32Array.from(c1, (v) => f32(v - Math.floor(v))),
  };
}

/**
 * FreeU's Fourier_filter(threshold 1) along one axis of length n: fftshift puts frequency 0 at n//2, and the
 * filter scales shifted rows [n//2 - 1, n//2 + 1) (Python slice semantics: a start of -1 wraps), i.e. the
 * frequencies -1 and 0. The filtered signal is x + (scale - 1) * real(L_h X L_w^T) with
 * L[a, b] = (1/n) sum_k exp(2 pi i k (a - b) / n); this returns (re, im) of L, row-major [n, n].
 */
export function fourierLowPass(n: number): { re: Float64Array; im: Float64Array } {
  const start = Math.floor(n / 2) - 1;
  const from = start < 0 ? Math.max(start + n, 0) : start;
  const to = Math.min(Math.floor(n / 2) + 1, n);
  const freqs = new Set<number>();
  for (let j = from; j < to; j++) freqs.add((((j - Math.floor(n / 2)) % n) + n) % n);
  const re = new Float64Array(n * n);
  const im = new Float64Array(n * n);
  for (let a = 0; a < n; a++)
    for (let b = 0; b < n; b++) {
      let r = 0;
      let i = 0;
      for (const k of freqs) {
        const ang = (2 * Math.PI * k * (a - b)) / n;
        r += Math.cos(ang);
        i += Math.sin(ang);
      }
      re[a * n + b] = r / n;
      im[a * n + b] = i / n;
    }
  return { re, im };
}
