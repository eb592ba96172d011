/**
 * Resampling of NCHW float tensors (latents, hints) as ComfyUI's common_upscale does it: optional centre crop
 * to the target aspect ratio, then 'nearest-exact' (pixel-centre nearest) or 'bilinear' (align_corners=False).
 */

import { pyRound } from '../sampling/cond-entries.js';

export type ResizeMethod = 'nearest-exact' | 'bilinear';
export type Shape4 = [number, number, number, number];

function centreCrop(H: number, W: number, height: number, width: number, crop: boolean) {
  let x0 = 0;
  let y0 = 0;
  let cw = W;
  let ch = H;
  if (crop) {
    const oldAspect = W / H;
    const newAspect = width / height;
    // common_upscale: the offset is rounded (Python round) and the window keeps it on both sides.
    if (oldAspect > newAspect) {
      x0 = pyRound((W - W * (newAspect / oldAspect)) / 2);
      cw = W - 2 * x0;
    } else if (oldAspect < newAspect) {
      y0 = pyRound((H - H * (oldAspect / newAspect)) / 2);
      ch = H - 2 * y0;
    }
  }
  return { x0, y0, cw, ch };
}

export function resizeNCHW(
  data: Float32Array,
  shape: Shape4,
  height: number,
  width: number,
  method: ResizeMethod = 'nearest-exact',
  crop = true,
): { data: Float32Array; shape: Shape4 } {
  const [B, C, H, W] = shape;
  if (H === height && W === width) return { data, shape };
  const { x0, y0, cw, ch } = centreCrop(H, W, height, width, crop);
  const out = new Float32Array(B * C * height * width);
  const planes = B * C;
  if (method === 'nearest-exact') {
    // torch computes the source index with a float32 scale.
    const f32 = Math.fround;
    const sy = Int32Array.from({ length: height }, (_, i) => y0 + Math.min(ch - 1, Math.floor(f32(f32(i + 0.5) * f32(ch / height)))));
    const sx = Int32Array.from({ length: width }, (_, j) => x0 + Math.min(cw - 1, Math.floor(f32(f32(j + 0.5) * f32(cw / width)))));
    for (let p = 0; p < planes; p++) {
      const src = p * H * W;
      const dst = p * height * width;
      for (let i = 0; i < height; i++) {
        const row = src + sy[i]! * W;
        for (let j = 0; j < width; j++) out[dst + i * width + j] = data[row + sx[j]!]!;
      }
    }
    return { data: out, shape: [B, C, height, width] };
  }
  const coord = (o: number, inSize: number, outSize: number) => {
    const s = Math.max(0, (o + 0.5) * (inSize / outSize) - 0.5);
    const i0 = Math.min(Math.floor(s), inSize - 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    return { i0, i1, f: s - i0 };
  };
  const ys = Array.from({ length: height }, (_, i) => coord(i, ch, height));
  const xs = Array.from({ length: width }, (_, j) => coord(j, cw, width));
  for (let p = 0; p < planes; p++) {
    const src = p * H * W;
    const dst = p * height * width;
    for (let i = 0; i < height; i++) {
      const { i0, i1, f: fy } = ys[i]!;
      const r0 = src + (y0 + i0) * W + x0;
      const r1 = src + (y0 + i1) * W + x0;
      for (let j = 0; j < width; j++) {
        const { i0: j0, i1: j1, f: fx } = xs[j]!;
        const top = data[r0 + j0]! * (1 - fx) + data[r0 + j1]! * fx;
        const bot = data[r1 + j0]! * (1 - fx) + data[r1 + j1]! * fx;
        out[dst + i * width + j] = top * (1 - fy) + bot * fy;
      }
    }
  }
  return { data: out, shape: [B, C, height, width] };
}

/** ControlNet hints follow ComfyUI: nearest-exact to 8× the latent size, centre-cropped. */
export function resizeHint(data: Float32Array, shape: Shape4, height: number, width: number): { data: Float32Array; shape: Shape4 } {
  return resizeNCHW(data, shape, height, width, 'nearest-exact', true);
}
