/**
 * comfy.utils.common_upscale for NCHW float tensors: an optional centre crop to the target aspect, then
 * torch's interpolate (nearest-exact, bilinear, bicubic, area; align_corners False, no antialias), the
 * spherical 'bislerp' for latents, or Pillow's 8-bit Lanczos for images.
 */
import { pyRound } from '../sampling/cond-entries.js';
import { bislerp } from './bislerp.js';
import { lanczosResize } from './lanczos.js';

export const LATENT_UPSCALE_METHODS = ['nearest-exact', 'bilinear', 'area', 'bicubic', 'bislerp'] as const;
export const IMAGE_UPSCALE_METHODS = ['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos'] as const;
export type UpscaleMethodName = (typeof LATENT_UPSCALE_METHODS)[number] | (typeof IMAGE_UPSCALE_METHODS)[number];
export type Shape4 = [number, number, number, number];

export interface Tensor4 {
  data: Float32Array;
  shape: Shape4;
}

const f32 = Math.fround;

/** The crop 'center' window: the input narrowed to the target aspect, as common_upscale computes it. */
function centreWindow(H: number, W: number, width: number, height: number): { y: number; x: number; h: number; w: number } {
  const oldAspect = W / H;
  const newAspect = width / height;
  let x = 0;
  let y = 0;
  if (oldAspect > newAspect) x = pyRound((W - W * (newAspect / oldAspect)) / 2);
  else if (oldAspect < newAspect) y = pyRound((H - H * (oldAspect / newAspect)) / 2);
  return { y, x, h: H - 2 * y, w: W - 2 * x };
}

function crop(t: Tensor4, y: number, x: number, h: number, w: number): Tensor4 {
  const [B, C, H, W] = t.shape;
  if (y === 0 && x === 0 && h === H && w === W) return t;
  const out = new Float32Array(B * C * h * w);
  for (let p = 0; p < B * C; p++) for (let i = 0; i < h; i++) out.set(t.data.subarray((p * H + y + i) * W + x, (p * H + y + i) * W + x + w), (p * h + i) * w);
  return { data: out, shape: [B, C, h, w] };
}

/** Applies a separable 1-D resampler along H then W (taps + weights per output index). */
type Taps = { idx: Int32Array; wt: Float64Array; n: number };

function separable(t: Tensor4, height: number, width: number, rows: Taps, cols: Taps): Tensor4 {
  const [B, C, H, W] = t.shape;
  const out = new Float32Array(B * C * height * width);
  const tmp = new Float64Array(H * width);
  for (let p = 0; p < B * C; p++) {
    const src = t.data.subarray(p * H * W, (p + 1) * H * W);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < width; x++) {
        let s = 0;
        for (let k = 0; k < cols.n; k++) s += cols.wt[x * cols.n + k]! * src[y * W + cols.idx[x * cols.n + k]!]!;
        tmp[y * width + x] = s;
      }
    }
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        let s = 0;
        for (let k = 0; k < rows.n; k++) s += rows.wt[y * rows.n + k]! * tmp[rows.idx[y * rows.n + k]! * width + x]!;
        out[(p * height + y) * width + x] = s;
      }
    }
  }
  return { data: out, shape: [B, C, height, width] };
}

function nearestTaps(inSize: number, outSize: number): Taps {
  const scale = f32(inSize / outSize);
  const idx = Int32Array.from({ length: outSize }, (_, d) => Math.min(Math.floor(f32(f32(d + 0.5) * scale)), inSize - 1));
  return { idx, wt: new Float64Array(outSize).fill(1), n: 1 };
}

function linearTaps(inSize: number, outSize: number): Taps {
  const scale = f32(inSize / outSize);
  const idx = new Int32Array(outSize * 2);
  const wt = new Float64Array(outSize * 2);
  for (let d = 0; d < outSize; d++) {
    const src = Math.max(0, f32(f32(scale * f32(d + 0.5)) - 0.5));
    const i0 = Math.floor(src);
    const l = f32(src - i0);
    idx[2 * d] = i0;
    idx[2 * d + 1] = i0 < inSize - 1 ? i0 + 1 : i0;
    wt[2 * d] = f32(1 - l);
    wt[2 * d + 1] = l;
  }
  return { idx, wt, n: 2 };
}

function cubicTaps(inSize: number, outSize: number): Taps {
  const A = -0.75;
  const cc1 = (x: number) => ((A + 2) * x - (A + 3)) * x * x + 1;
  const cc2 = (x: number) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  const scale = f32(inSize / outSize);
  const idx = new Int32Array(outSize * 4);
  const wt = new Float64Array(outSize * 4);
  for (let d = 0; d < outSize; d++) {
    const real = f32(f32(scale * f32(d + 0.5)) - 0.5);
    const i0 = Math.floor(real);
    const t = f32(real - i0);
    const w = [cc2(t + 1), cc1(t), cc1(1 - t), cc2(2 - t)];
    for (let k = 0; k < 4; k++) {
      idx[4 * d + k] = Math.min(Math.max(i0 - 1 + k, 0), inSize - 1);
      wt[4 * d + k] = f32(w[k]!);
    }
  }
  return { idx, wt, n: 4 };
}

/** adaptive_avg_pool: output i averages input [floor(i*in/out), ceil((i+1)*in/out)). */
function areaTaps(inSize: number, outSize: number): Taps {
  let n = 1;
  const ranges: Array<[number, number]> = [];
  for (let d = 0; d < outSize; d++) {
    const s = Math.floor((d * inSize) / outSize);
    const e = Math.ceil(((d + 1) * inSize) / outSize);
    ranges.push([s, e]);
    n = Math.max(n, e - s);
  }
  const idx = new Int32Array(outSize * n);
  const wt = new Float64Array(outSize * n);
  ranges.forEach(([s, e], d) => {
    for (let k = 0; k < n; k++) {
      idx[d * n + k] = Math.min(s + k, inSize - 1);
      wt[d * n + k] = k < e - s ? 1 / (e - s) : 0;
    }
  });
  return { idx, wt, n };
}

const TAPS: Record<string, (inSize: number, outSize: number) => Taps> = {
  'nearest-exact': nearestTaps,
  bilinear: linearTaps,
  bicubic: cubicTaps,
  area: areaTaps,
};

/** common_upscale(samples, width, height, method, crop) on an NCHW tensor. */
export function commonUpscale(t: Tensor4, width: number, height: number, method: UpscaleMethodName, cropMode: 'disabled' | 'center' = 'disabled'): Tensor4 {
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) throw new Error(`upscale: target size ${width}x${height} is invalid`);
  const [, , H, W] = t.shape;
  let s = t;
  if (cropMode === 'center') {
    const c = centreWindow(H, W, width, height);
    s = crop(t, c.y, c.x, c.h, c.w);
  }
  if (method === 'bislerp') return bislerp(s, width, height);
  if (method === 'lanczos') return lanczosResize(s, width, height);
  const taps = TAPS[method];
  if (!taps) throw new Error(`upscale: unknown method "${method}"`);
  const [, , h, w] = s.shape;
  return separable(s, height, width, taps(h, height), taps(w, width));
}

/** IMAGE (NHWC) <-> NCHW, for image nodes that resample. */
export function nhwcToNchw(data: Float32Array, shape: readonly number[]): Tensor4 {
  const [B, H, W, C] = shape as Shape4;
  const out = new Float32Array(data.length);
  for (let b = 0; b < B; b++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < C; c++) out[((b * C + c) * H + y) * W + x] = data[((b * H + y) * W + x) * C + c]!;
  return { data: out, shape: [B, C, H, W] };
}

export function nchwToNhwc(t: Tensor4): { data: Float32Array; shape: [number, number, number, number] } {
  const [B, C, H, W] = t.shape;
  const out = new Float32Array(t.data.length);
  for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) out[((b * H + y) * W + x) * C + c] = t.data[((b * C + c) * H + y) * W + x]!;
  return { data: out, shape: [B, H, W, C] };
}

/** LatentUpscale's target in latent cells from pixel inputs: sides raised to >= 64 px, a 0 side keeps the aspect. */
export function latentUpscaleTarget(W: number, H: number, widthPx: number, heightPx: number): { width: number; height: number } | null {
  if (widthPx === 0 && heightPx === 0) return null;
  let w = widthPx;
  let h = heightPx;
  if (w === 0) {
    h = Math.max(64, h);
    w = Math.max(64, pyRound((W * h) / H));
  } else if (h === 0) {
    w = Math.max(64, w);
    h = Math.max(64, pyRound((H * w) / W));
  } else {
    w = Math.max(64, w);
    h = Math.max(64, h);
  }
  return { width: Math.floor(w / 8), height: Math.floor(h / 8) };
}

/** ImageScale's target in pixels: a 0 side keeps the aspect (at least 1). */
export function imageScaleTarget(W: number, H: number, width: number, height: number): { width: number; height: number } | null {
  if (width === 0 && height === 0) return null;
  if (width === 0) return { width: Math.max(1, pyRound((W * height) / H)), height };
  if (height === 0) return { width, height: Math.max(1, pyRound((H * width) / W)) };
  return { width, height };
}

/** *ScaleBy targets: round(side * scale) with Python rounding (12.5 -> 12). */
export function scaleByTarget(W: number, H: number, scale: number): { width: number; height: number } {
  return { width: Math.max(1, pyRound(W * scale)), height: Math.max(1, pyRound(H * scale)) };
}
