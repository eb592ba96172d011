/**
 * Latent batch and compositing operations of ComfyUI's core latent nodes (nodes.py LatentComposite,
 * LatentCrop, RepeatLatentBatch, LatentFromBatch; nodes_mask LatentCompositeMasked; nodes_latent
 * LatentBlend), on NCHW float32 tensors. Positions and sizes arrive in pixels and are divided by 8.
 */
import { resizeNCHW } from '../image/resize.js';
import { commonUpscale, type Shape4, type Tensor4 } from '../image/upscale.js';
import { TorchGenerator } from '../sampling/torch-rng.js';

const f32 = Math.fround;

/** A LATENT value's tensors: samples plus the optional noise mask and batch indices. */
export interface LatentParts {
  samples: Tensor4;
  noiseMask?: { data: Float32Array; shape: Shape4 };
  batchIndex?: number[];
}

/** Python slice bounds [start, stop) of an axis of `size` (negative values count from the end). */
function pySlice(start: number, stop: number, size: number): [number, number] {
  const norm = (v: number) => (v < 0 ? Math.max(0, v + size) : Math.min(v, size));
  const s = norm(start);
  return [s, Math.max(s, norm(stop))];
}

function repeatBatch(data: Float32Array, batch: number, target: number): Float32Array {
  if (batch === target) return data;
  const item = data.length / batch;
  const out = new Float32Array(item * target);
  for (let i = 0; i < target; i++) out.set(data.subarray((i % batch) * item, ((i % batch) + 1) * item), i * item);
  return out;
}

/** LatentComposite: `from` pasted at (x, y) pixels, its inner edges faded over `feather` pixels. */
export function latentComposite(to: Tensor4, from: Tensor4, xPx: number, yPx: number, featherPx: number): Tensor4 {
  const [B, C, H, W] = to.shape;
  const [Bf, Cf, Hf, Wf] = from.shape;
  if (Cf !== C) throw new Error(`LatentComposite: channel counts differ (${C} vs ${Cf})`);
  const x = Math.floor(xPx / 8);
  const y = Math.floor(yPx / 8);
  const feather = Math.floor(featherPx / 8);
  const h = Math.max(0, Math.min(Hf, H - y));
  const w = Math.max(0, Math.min(Wf, W - x));
  const mask = new Float32Array(h * w).fill(1);
  const scaleRows = ([s, e]: [number, number], f: number) => {
    for (let i = s; i < e; i++) for (let j = 0; j < w; j++) mask[i * w + j] = f32(mask[i * w + j]! * f);
  };
  const scaleCols = ([s, e]: [number, number], f: number) => {
    for (let i = 0; i < h; i++) for (let j = s; j < e; j++) mask[i * w + j] = f32(mask[i * w + j]! * f);
  };
  for (let t = 0; t < feather; t++) {
    const f = f32((1 / feather) * (t + 1));
    if (y !== 0) scaleRows(pySlice(t, t + 1, h), f);
    if (y + h < H) scaleRows(pySlice(h - 1 - t, h - t, h), f);
    if (x !== 0) scaleCols(pySlice(t, t + 1, w), f);
    if (x + w < W) scaleCols(pySlice(w - 1 - t, w - t, w), f);
  }
  const out = Float32Array.from(to.data);
  for (let b = 0; b < B; b++) {
    const bf = Bf === 1 ? 0 : b % Bf;
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < h; i++) {
        for (let j = 0; j < w; j++) {
          const src = from.data[((bf * C + c) * Hf + i) * Wf + j]!;
          const di = ((b * C + c) * H + y + i) * W + x + j;
          if (feather === 0) out[di] = src;
          else {
            const m = mask[i * w + j]!;
            out[di] = f32(src * m) + f32(out[di]! * f32(1 - m));
          }
        }
      }
    }
  }
  return { data: out, shape: [B, C, H, W] };
}

/** LatentCompositeMasked (multiplier 8): source * mask + destination * (1 - mask) over the visible part. */
export function latentCompositeMasked(dest: Tensor4, source: Tensor4, xPx: number, yPx: number, resizeSource: boolean, mask?: { data: Float32Array; shape: readonly number[] }): Tensor4 {
  const [B, C, H, W] = dest.shape;
  let src = source;
  if (resizeSource) src = { data: resizeNCHW(source.data, source.shape, H, W, 'bilinear', false).data, shape: [source.shape[0], C, H, W] };
  const [sb, , sh, sw] = src.shape;
  const srcData = repeatBatch(src.data, sb, B);
  const x = Math.max(-sw * 8, Math.min(xPx, W * 8));
  const y = Math.max(-sh * 8, Math.min(yPx, H * 8));
  const left = Math.floor(x / 8);
  const top = Math.floor(y / 8);
  let m: Float32Array;
  if (mask) {
    const mh = mask.shape[mask.shape.length - 2]!;
    const mw = mask.shape[mask.shape.length - 1]!;
    const mb = mask.data.length / (mh * mw);
    m = repeatBatch(resizeNCHW(mask.data, [mb, 1, mh, mw], sh, sw, 'bilinear', false).data, mb, B);
  } else m = new Float32Array(B * sh * sw).fill(1);
  const vw = Math.min(sw, W - left + Math.min(0, x), W - Math.max(0, left));
  const vh = Math.min(sh, H - top + Math.min(0, y), H - Math.max(0, top));
  const out = Float32Array.from(dest.data);
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < vh; i++) {
        for (let j = 0; j < vw; j++) {
          const mv = m[(b * sh + i) * sw + j]!;
          const di = ((b * C + c) * H + top + i) * W + left + j;
          out[di] = f32(mv * srcData[((b * C + c) * sh + i) * sw + j]!) + f32(f32(1 - mv) * out[di]!);
        }
      }
    }
  }
  return { data: out, shape: [B, C, H, W] };
}

/** LatentBlend (normal mode): s1*f + s2*(1-f), s2 first resized (bicubic, centre crop) if its shape differs. */
export function latentBlend(s1: Tensor4, s2: Tensor4, factor: number): Tensor4 {
  const [B, C, H, W] = s1.shape;
  let b2 = s2;
  if (!s1.shape.every((d, i) => d === s2.shape[i])) b2 = commonUpscale(s2, W, H, 'bicubic', 'center');
  if (b2.data.length !== s1.data.length) throw new Error(`LatentBlend: batch or channels differ ([${s1.shape.join(', ')}] vs [${s2.shape.join(', ')}])`);
  const f = f32(factor);
  const g = f32(1 - factor);
  return { data: Float32Array.from(s1.data, (v, i) => f32(v * f) + f32(b2.data[i]! * g)), shape: [B, C, H, W] };
}

/** LatentCrop: pixels -> cells, the origin kept at least 8 cells inside the latent, slicing clipped. */
export function latentCrop(t: Tensor4, widthPx: number, heightPx: number, xPx: number, yPx: number): Tensor4 {
  const [B, C, H, W] = t.shape;
  const x = Math.max(0, Math.min(Math.floor(xPx / 8), W - 8));
  const y = Math.max(0, Math.min(Math.floor(yPx / 8), H - 8));
  const [y0, y1] = pySlice(y, y + Math.floor(heightPx / 8), H);
  const [x0, x1] = pySlice(x, x + Math.floor(widthPx / 8), W);
  const h = y1 - y0;
  const w = x1 - x0;
  const out = new Float32Array(B * C * h * w);
  for (let p = 0; p < B * C; p++) for (let i = 0; i < h; i++) out.set(t.data.subarray((p * H + y0 + i) * W + x0, (p * H + y0 + i) * W + x1), (p * h + i) * w);
  return { data: out, shape: [B, C, h, w] };
}

/** RepeatLatentBatch: samples (and a batched noise mask) repeated `amount` times; batch indices offset. */
export function repeatLatentBatch(l: LatentParts, amount: number): LatentParts {
  const [B, C, H, W] = l.samples.shape;
  const out: LatentParts = { samples: { data: repeatBatch(l.samples.data, B, B * amount), shape: [B * amount, C, H, W] } };
  if (l.noiseMask) {
    const m = l.noiseMask;
    // ComfyUI pads a short mask batch to the samples, then repeats the original one: the padded copy is unused.
    out.noiseMask = m.shape[0] > 1 ? { data: repeatBatch(m.data, m.shape[0], m.shape[0] * amount), shape: [m.shape[0] * amount, m.shape[1], m.shape[2], m.shape[3]] } : m;
  }
  if (l.batchIndex) {
    const bi = l.batchIndex;
    const offset = Math.max(...bi) - Math.min(...bi) + 1;
    out.batchIndex = [...bi];
    for (let i = 1; i < amount; i++) for (const x of bi) out.batchIndex.push(x + i * offset);
  }
  return out;
}

/** LatentFromBatch: items [index, index + length) (both clamped), with the matching mask and indices. */
export function latentFromBatch(l: LatentParts, index: number, length: number): LatentParts {
  const [B, C, H, W] = l.samples.shape;
  const start = Math.min(B - 1, index);
  const len = Math.min(B - start, length);
  const item = C * H * W;
  const out: LatentParts = { samples: { data: l.samples.data.slice(start * item, (start + len) * item), shape: [len, C, H, W] } };
  if (l.noiseMask) {
    const m = l.noiseMask;
    if (m.shape[0] === 1) out.noiseMask = m;
    else {
      const mi = m.data.length / m.shape[0];
      const padded = m.shape[0] < B ? repeatBatch(m.data, m.shape[0], B) : m.data;
      const n = Math.max(0, Math.min(padded.length / mi, start + len) - start);
      out.noiseMask = { data: padded.slice(start * mi, (start + n) * mi), shape: [n, m.shape[1], m.shape[2], m.shape[3]] };
    }
  }
  out.batchIndex = l.batchIndex ? l.batchIndex.slice(start, start + len) : Array.from({ length: len }, (_, i) => start + i);
  return out;
}

/**
 * prepare_noise with batch indices: one generator on the seed draws randn([1, C, H, W]) for every index up to
 * the largest; item i gets the draw of its index. Without indices: one randn of the whole shape.
 */
export function prepareNoise(seed: number | bigint, shape: Shape4, batchIndex?: number[]): Float32Array {
  const g = new TorchGenerator(seed);
  const n = shape[0] * shape[1] * shape[2] * shape[3];
  if (!batchIndex) return g.randn(n);
  const item = n / shape[0];
  const max = Math.max(...batchIndex);
  const draws: Float32Array[] = [];
  for (let i = 0; i <= max; i++) draws.push(g.randn(item));
  const out = new Float32Array(n);
  batchIndex.forEach((bi, k) => out.set(draws[bi]!, k * item));
  return out;
}
