/**
 * MultiDiffusion (Bar-Tal et al. 2023), the tiled baseline of the ResAdapter paper: at every model evaluation
 * the latent is cut into overlapping windows of the model's own resolution, the model predicts each window,
 * and the predictions are averaged where windows overlap. The model never sees a size it was not trained
 * at; the price is one UNet pass per window per step (batched `batch` windows at a time).
 *
 * It wraps an EpsModel, so it composes with CFG, ControlNets (their hints are cropped with the window) and
 * adapters: the same eps average is a denoised average, because every window shares the step's sigma.
 */
import { resizeHint } from '../image/resize.js';
import type { ActiveControl, CondBatch, EpsModel, Shape4 } from '../sampling/types.js';

export interface MultiDiffusionOptions {
  /** Window height and width in latent cells. */
  window: [height: number, width: number];
  /** Step between window origins in latent cells (≤ the window, or windows would leave gaps). */
  stride: [height: number, width: number];
  /** Windows per UNet call. */
  batch: number;
}

/** A window's top-left corner in latent cells and its size (clamped to the latent). */
export interface Window {
  y: number;
  x: number;
  h: number;
  w: number;
}

/**
 * Origins along one axis: 0, stride, 2·stride, … and a last window flush with the far edge, so every cell is
 * covered and no window hangs over the edge.
 */
export function windowOrigins(size: number, window: number, stride: number): number[] {
  if (window >= size) return [0];
  const out: number[] = [];
  for (let o = 0; o + window < size; o += stride) out.push(o);
  out.push(size - window);
  return out;
}

export function windowsFor(height: number, width: number, opts: Pick<MultiDiffusionOptions, 'window' | 'stride'>): Window[] {
  const h = Math.min(opts.window[0], height);
  const w = Math.min(opts.window[1], width);
  const out: Window[] = [];
  for (const y of windowOrigins(height, h, opts.stride[0])) for (const x of windowOrigins(width, w, opts.stride[1])) out.push({ y, x, h, w });
  return out;
}

export function checkMultiDiffusionOptions(o: MultiDiffusionOptions): void {
  const ints = [...o.window, ...o.stride, o.batch];
  if (!ints.every((v) => Number.isInteger(v) && v > 0)) throw new Error(`MultiDiffusion: window, stride and batch must be positive integers (window ${o.window.join('×')}, stride ${o.stride.join('×')}, batch ${o.batch})`);
  if (o.stride[0] > o.window[0] || o.stride[1] > o.window[1]) throw new Error(`MultiDiffusion: stride ${o.stride.join('×')} is larger than the window ${o.window.join('×')}: parts of the image would never be denoised`);
}

/** Copies the window's [N, C, h, w] block out of an [N, C, H, W] tensor (any leading batch). */
function crop(data: Float32Array, shape: Shape4, win: Window, scale = 1): Float32Array {
  const [n, c, H, W] = shape;
  const wy = win.y * scale;
  const wx = win.x * scale;
  const wh = win.h * scale;
  const ww = win.w * scale;
  const out = new Float32Array(n * c * wh * ww);
  let o = 0;
  for (let p = 0; p < n * c; p++) {
    const plane = p * H * W;
    for (let y = 0; y < wh; y++) {
      const row = plane + (wy + y) * W + wx;
      out.set(data.subarray(row, row + ww), o);
      o += ww;
    }
  }
  return out;
}

function repeat<T>(xs: readonly T[], times: number): T[] {
  return Array.from({ length: times }, () => xs).flat();
}

function concatArrays(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** The CondBatch for `group` windows stacked along the batch axis, spatial inputs cropped to each window. */
function groupCond(cond: CondBatch, shape: Shape4, group: Window[]): CondBatch {
  const k = group.length;
  const [B, , H, W] = shape;
  const [cb, tokens, dim] = cond.contextShape;
  const context = concatArrays(Array.from({ length: k }, () => cond.context));
  const controls: ActiveControl[] = cond.controls.map((c) => {
    // Hints come at any size; brought to 8× the full latent first so each window crops its own part.
    const full = resizeHint(c.hint, c.hintShape, H * 8, W * 8);
    const parts = group.map((win) => crop(full.data, full.shape, win, 8));
    return { ...c, hint: concatArrays(parts), hintShape: [full.shape[0] * k, full.shape[1], group[0]!.h * 8, group[0]!.w * 8] };
  });
  const out: CondBatch = { ...cond, context, contextShape: [cb * k, tokens, dim], controls, condOrUncond: repeat(cond.condOrUncond, k) };
  const extras = cond;
  if (extras.entries) out.entries = repeat(extras.entries, k);
  if (extras.concat) {
    const cs = extras.concat.shape;
    if (cs[2] !== H || cs[3] !== W) throw new Error(`MultiDiffusion: concat channels are ${cs[3]}×${cs[2]}, the latent ${W}×${H}`);
    out.concat = { data: concatArrays(group.map((win) => crop(extras.concat!.data, cs, win))), shape: [cs[0] * k, cs[1], group[0]!.h, group[0]!.w] };
  }
  if (cb !== B) throw new Error(`MultiDiffusion: context batch ${cb} does not match the latent batch ${B}`);
  return out;
}

/** Wraps `inner` so every evaluation runs window by window and averages the overlaps. */
export function multiDiffusionEpsModel(inner: EpsModel, opts: MultiDiffusionOptions): EpsModel {
  checkMultiDiffusionOptions(opts);
  return async (xIn, shape, timestep, cond) => {
    const [B, C, H, W] = shape;
    const windows = windowsFor(H, W, opts);
    if (windows.length === 1 && windows[0]!.h === H && windows[0]!.w === W) return inner(xIn, shape, timestep, cond);
    const sum = new Float32Array(xIn.length);
    const count = new Float32Array(H * W);
    const item = C * H * W;
    for (let g = 0; g < windows.length; g += opts.batch) {
      const group = windows.slice(g, g + opts.batch);
      const { h, w } = group[0]!;
      const x = concatArrays(group.map((win) => crop(xIn, shape, win)));
      const eps = await inner(x, [B * group.length, C, h, w], timestep, groupCond(cond, shape, group));
      group.forEach((win, gi) => {
        for (let b = 0; b < B; b++) {
          for (let c = 0; c < C; c++) {
            const src = ((gi * B + b) * C + c) * h * w;
            const dst = b * item + c * H * W;
            for (let y = 0; y < h; y++) {
              const s = src + y * w;
              const d = dst + (win.y + y) * W + win.x;
              for (let xx = 0; xx < w; xx++) sum[d + xx] = sum[d + xx]! + eps[s + xx]!;
            }
          }
        }
        for (let y = 0; y < h; y++) for (let xx = 0; xx < w; xx++) count[(win.y + y) * W + win.x + xx] = count[(win.y + y) * W + win.x + xx]! + 1;
      });
    }
    for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) {
      const off = b * item + c * H * W;
      for (let p = 0; p < H * W; p++) sum[off + p] = sum[off + p]! / count[p]!;
    }
    return sum;
  };
}
