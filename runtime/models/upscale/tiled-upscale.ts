/**
 * ImageUpscaleWithModel's arithmetic: each call goes through spandrel's descriptor (pad bottom/right to the
 * model's size requirements, run, clamp to [0, 1], crop), and images larger than the tile are processed in
 * overlapping tiles blended with masks feathered on every side (ComfyUI's tiled_scale_multidim).
 */
import { crop, padBottomRight, type UpscaleModel } from './rrdb.js';

type Dims4 = [number, number, number, number];
export interface Nchw {
  data: Float32Array;
  dims: Dims4;
}

/** Pads one axis length `n` up to `target`: mirror first (at most n - 1 pixels), then repeat the edge. */
function padTo(img: Nchw, targetH: number, targetW: number): Nchw {
  let cur = img;
  const [, , h, w] = cur.dims;
  const rh = Math.min(targetH - h, h - 1);
  const rw = Math.min(targetW - w, w - 1);
  if (rh > 0 || rw > 0) {
    cur = { data: padBottomRight(cur.data, cur.dims, Math.max(rh, 0), Math.max(rw, 0), 'reflect'), dims: [cur.dims[0], cur.dims[1], h + Math.max(rh, 0), w + Math.max(rw, 0)] };
  }
  const [, , h2, w2] = cur.dims;
  if (h2 < targetH || w2 < targetW) {
    cur = { data: padBottomRight(cur.data, cur.dims, targetH - h2, targetW - w2, 'replicate'), dims: [cur.dims[0], cur.dims[1], targetH, targetW] };
  }
  return cur;
}

/** spandrel's ImageModelDescriptor.__call__: size requirements, forward, clamp_(0, 1), crop to h*scale x w*scale. */
export async function descriptorCall(model: UpscaleModel, img: Nchw): Promise<Nchw> {
  const { minimum, multipleOf } = model.sizeRequirements;
  const [b, c, h, w] = img.dims;
  const need = (n: number) => {
    const m = Math.max(n, minimum);
    return Math.ceil(m / multipleOf) * multipleOf;
  };
  const padded = padTo(img, need(h), need(w));
  const out = await model.forward(padded.data, padded.dims);
  const data = out.data;
  for (let i = 0; i < data.length; i++) data[i] = Math.min(Math.max(data[i]!, 0), 1);
  const oh = h * model.scale;
  const ow = w * model.scale;
  return { data: crop(data, out.dims, oh, ow), dims: [b, out.dims[1], oh, ow] };
}

/** comfy.utils.tiled_scale_multidim over H and W with one tile size and overlap for both axes. */
export async function tiledScale(img: Nchw, fn: (tile: Nchw) => Promise<Nchw>, tile: number, overlap: number, scale: number, outChannels: number): Promise<Nchw> {
  const [B, C, H, W] = img.dims;
  const OH = Math.round(H * scale);
  const OW = Math.round(W * scale);
  const output = new Float32Array(B * outChannels * OH * OW);
  const item = (b: number): Nchw => ({ data: img.data.subarray(b * C * H * W, (b + 1) * C * H * W), dims: [1, C, H, W] });
  for (let b = 0; b < B; b++) {
    const s = item(b);
    const dst = output.subarray(b * outChannels * OH * OW, (b + 1) * outChannels * OH * OW);
    if (H <= tile && W <= tile) {
      dst.set((await fn(s)).data);
      continue;
    }
    const out = new Float32Array(dst.length);
    const div = new Float32Array(dst.length);
    const positions = (L: number) => {
      if (L <= tile) return [0];
      const ps: number[] = [];
      for (let p = 0; p < L - overlap; p += tile - overlap) ps.push(p);
      return ps;
    };
    for (const py of positions(H))
      for (const px of positions(W)) {
        const y0 = Math.max(0, Math.min(H - overlap, py));
        const x0 = Math.max(0, Math.min(W - overlap, px));
        const th = Math.min(tile, H - y0);
        const tw = Math.min(tile, W - x0);
        const t = new Float32Array(C * th * tw);
        for (let ch = 0; ch < C; ch++) for (let y = 0; y < th; y++) t.set(s.data.subarray((ch * H + y0 + y) * W + x0, (ch * H + y0 + y) * W + x0 + tw), (ch * th + y) * tw);
        const ps = await fn({ data: t, dims: [1, C, th, tw] });
        const [, pc, ph, pw] = ps.dims;
        const feather = Math.round(overlap * scale);
        const wy = featherWeights(ph, feather);
        const wx = featherWeights(pw, feather);
        const oy = Math.round(y0 * scale);
        const ox = Math.round(x0 * scale);
        for (let ch = 0; ch < pc; ch++)
          for (let y = 0; y < ph; y++)
            for (let x = 0; x < pw; x++) {
              const m = Math.fround(wy[y]! * wx[x]!);
              const o = (ch * OH + oy + y) * OW + ox + x;
              out[o] = Math.fround(out[o]! + Math.fround(ps.data[(ch * ph + y) * pw + x]! * m));
              div[o] = Math.fround(div[o]! + m);
            }
      }
    for (let i = 0; i < dst.length; i++) dst[i] = out[i]! / div[i]!;
  }
  return { data: output, dims: [B, outChannels, OH, OW] };
}

/** The mask factor along one axis: ones, with positions t and n-1-t scaled by (t+1)/f (skipped when f >= n). */
function featherWeights(n: number, f: number): Float32Array {
  const w = new Float32Array(n).fill(1);
  if (f >= n) return w;
  for (let t = 0; t < f; t++) {
    const a = (t + 1) / f;
    w[t] = Math.fround(w[t]! * a);
    w[n - 1 - t] = Math.fround(w[n - 1 - t]! * a);
  }
  return w;
}

/** ImageUpscaleWithModel on an IMAGE batch (NHWC in [0, 1]): tile 512, overlap 32, result clamped to [0, 1]. */
export async function upscaleImage(model: UpscaleModel, image: { data: Float32Array; shape: readonly number[] }, tile = 512, overlap = 32): Promise<{ data: Float32Array; shape: Dims4 }> {
  const [B, H, W, C] = image.shape as Dims4;
  const nchw = new Float32Array(image.data.length);
  for (let b = 0; b < B; b++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < C; c++) nchw[((b * C + c) * H + y) * W + x] = image.data[((b * H + y) * W + x) * C + c]!;
  const out = await tiledScale({ data: nchw, dims: [B, C, H, W] }, (t) => descriptorCall(model, t), tile, overlap, model.scale, model.arch.outChannels);
  const [, OC, OH, OW] = out.dims;
  const nhwc = new Float32Array(out.data.length);
  for (let b = 0; b < B; b++)
    for (let c = 0; c < OC; c++)
      for (let y = 0; y < OH; y++)
        for (let x = 0; x < OW; x++) nhwc[((b * OH + y) * OW + x) * OC + c] = Math.min(Math.max(out.data[((b * OC + c) * OH + y) * OW + x]!, 0), 1);
  return { data: nhwc, shape: [B, OH, OW, OC] };
}
