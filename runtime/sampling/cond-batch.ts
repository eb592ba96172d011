/**
 * ComfyUI's calc_cond_batch for any number of guidance sides: every active entry runs the model on its
 * (cropped) part of x with its own context; entries with equal crop shapes share one batched call. Each
 * side's prediction is `sum(denoised_i * mult_i) / (sum(mult_i) + 1e-37)` per element, where mult is the
 * entry's strength (or mask * mask strength), feathered at area edges inside the latent.
 */
import type { ModelSampling } from './model-sampling.js';
import { condActive, type ResolvedCond } from './cond-resolve.js';
import { broadcastHint, cropNCHW, lcm, repeatTokens } from './cond-tensors.js';
import { f32 } from './f32.js';
import {
  InterruptedError,
  SamplingValidationError,
  type ActiveControl,
  type CondBatch,
  type ControlNetApplication,
  type EpsModel,
  type Shape4,
} from './types.js';

/** ComfyUI refuses to pad token lengths by more than this factor and runs the entries separately instead. */
const MAX_TOKEN_REPEAT = 4;

export interface CondBatchContext {
  model: EpsModel;
  ms: ModelSampling;
  /** Shape of the latent batch x. */
  shape: Shape4;
  signal?: AbortSignal;
}

/** One entry to run at this step (get_area_and_mult's result). */
interface Pending {
  side: number;
  cond: ResolvedCond;
  /** Clipped (h, w, y, x). */
  h: number;
  w: number;
  y: number;
  x: number;
  input: Float32Array;
  /** Weight per batch item and cell [B, h, w] (the same for every channel). */
  mult: Float32Array;
  controls: ControlNetApplication[];
}

function activeControls(c: ResolvedCond, sigma: number): ControlNetApplication[] {
  const s = f32(sigma);
  return c.controls.filter((k) => !(s > k.startSigma || s < k.endSigma)).map((k) => k.app);
}

export function sameControls(a: ControlNetApplication[], b: ControlNetApplication[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((x, i) => {
    const y = b[i]!;
    return x === y || (x.controlNet === y.controlNet && x.hint === y.hint && x.hintShape.every((d, k) => d === y.hintShape[k]) && x.strength === y.strength);
  });
}

/** mult for one entry: strength or mask * mask strength over the crop, area edges feathered when unmasked. */
function entryMult(c: ResolvedCond, shape: Shape4, h: number, w: number, y: number, x: number): Float32Array {
  const [B, , H, W] = shape;
  const mult = new Float32Array(B * h * w);
  if (c.mask) {
    const mb = Math.min(c.maskBatch, B);
    const ms = f32(c.maskStrength);
    const st = f32(c.strength);
    for (let b = 0; b < B; b++) {
      const m = c.mask.subarray((b % mb) * H * W, ((b % mb) + 1) * H * W);
      for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) mult[(b * h + i) * w + j] = f32(f32(m[(y + i) * W + x + j]! * ms) * st);
    }
    return mult;
  }
  mult.fill(c.strength);
  if (!c.area) return mult;
  // Rows then columns; each edge inside the latent fades in over rr cells, (1/rr) * (t + 1).
  const scaleRow = (row: number, f: number) => {
    for (let b = 0; b < B; b++) for (let j = 0; j < w; j++) mult[(b * h + row) * w + j] = f32(mult[(b * h + row) * w + j]! * f);
  };
  const scaleCol = (col: number, f: number) => {
    for (let b = 0; b < B; b++) for (let i = 0; i < h; i++) mult[(b * h + i) * w + col] = f32(mult[(b * h + i) * w + col]! * f);
  };
  const rh = Math.min(8, Math.floor(h / 4));
  if (y !== 0) for (let t = 0; t < rh; t++) scaleRow(t, f32((1 / rh) * (t + 1)));
  if (y + h < H) for (let t = 0; t < rh; t++) scaleRow(h - 1 - t, f32((1 / rh) * (t + 1)));
  const rw = Math.min(8, Math.floor(w / 4));
  if (x !== 0) for (let t = 0; t < rw; t++) scaleCol(t, f32((1 / rw) * (t + 1)));
  if (x + w < W) for (let t = 0; t < rw; t++) scaleCol(w - 1 - t, f32((1 / rw) * (t + 1)));
  return mult;
}

function pending(side: number, c: ResolvedCond, x: Float32Array, shape: Shape4, sigma: number): Pending | null {
  if (!condActive(c, sigma)) return null;
  const [, , H, W] = shape;
  let [h, w, y, xo] = c.area ?? [H, W, 0, 0];
  h = Math.min(H - y, h);
  w = Math.min(W - xo, w);
  return { side, cond: c, h, w, y, x: xo, input: cropNCHW(x, shape, y, xo, h, w), mult: entryMult(c, shape, h, w, y, xo), controls: activeControls(c, sigma) };
}

function canBatch(a: Pending, b: Pending): boolean {
  if (a.h !== b.h || a.w !== b.w) return false;
  if (!sameControls(a.controls, b.controls)) return false;
  if (Boolean(a.cond.model.concat) !== Boolean(b.cond.model.concat)) return false;
  const ta = a.cond.model.tokens;
  const tb = b.cond.model.tokens;
  return a.cond.model.dim === b.cond.model.dim && lcm(ta, tb) / Math.min(ta, tb) <= MAX_TOKEN_REPEAT;
}

/** One batched model call; returns denoised per item (each [B, C, h, w]). */
async function runGroup(group: Pending[], sigma: number, ctx: CondBatchContext): Promise<Float32Array[]> {
  const [B, C] = ctx.shape;
  const { h, w } = group[0]!;
  const n = group.length;
  const tokens = group.reduce((l, p) => lcm(l, p.cond.model.tokens), 1);
  const dim = group[0]!.cond.model.dim;
  const item = B * C * h * w;
  const context = new Float32Array(n * B * tokens * dim);
  const xIn = new Float32Array(n * item);
  group.forEach((p, i) => {
    const m = p.cond.model;
    context.set(repeatTokens(m.context, B, m.tokens, dim, tokens / m.tokens), i * B * tokens * dim);
    xIn.set(ctx.ms.calculateInput(sigma, p.input), i * item);
  });
  const callShape: Shape4 = [n * B, C, h, w];
  const active: ActiveControl[] = group[0]!.controls.map((app) => {
    const hint = broadcastHint(app.hint, app.hintShape, n * B, n);
    return { controlNet: app.controlNet, hint: hint.data, hintShape: hint.shape, strength: app.strength };
  });
  const cond: CondBatch = {
    context,
    contextShape: [n * B, tokens, dim],
    controls: active,
    condOrUncond: group.map((p) => (p.side === 0 ? 'cond' : 'uncond')),
    entries: group.map((p) => p.cond.model.entry),
    sigma,
  };
  const concat0 = group[0]!.cond.model.concat;
  if (concat0) {
    const k = concat0.length / (B * ctx.shape[2] * ctx.shape[3]);
    const data = new Float32Array(n * B * k * h * w);
    group.forEach((p, i) => data.set(cropNCHW(p.cond.model.concat!, [B, k, ctx.shape[2], ctx.shape[3]], p.y, p.x, h, w), i * B * k * h * w));
    cond.concat = { data, shape: [n * B, k, h, w] };
  }
  if (ctx.signal?.aborted) throw new InterruptedError();
  const out = await ctx.model(xIn, callShape, ctx.ms.sigmaToTimestep(sigma), cond);
  if (ctx.signal?.aborted) throw new InterruptedError();
  if (out.length !== xIn.length) throw new SamplingValidationError(`model returned ${out.length} values for an input of shape [${callShape.join(', ')}]`);
  return group.map((p, i) => ctx.ms.calculateDenoised(sigma, out.subarray(i * item, (i + 1) * item), p.input));
}

/**
 * The prediction of each side (`sides[i]` = that side's resolved entries; an empty list gives zeros) for x at
 * sigma. Cells no active entry covers come out 0.
 */
export async function calcCondBatch(sides: ResolvedCond[][], x: Float32Array, sigma: number, ctx: CondBatchContext): Promise<Float32Array[]> {
  const [B, C, H, W] = ctx.shape;
  const toRun: Pending[] = [];
  sides.forEach((list, side) => {
    for (const c of list) {
      const p = pending(side, c, x, ctx.shape, sigma);
      if (p) toRun.push(p);
    }
  });
  const preds = new Map<Pending, Float32Array>();
  const left = [...toRun];
  while (left.length) {
    const first = left[0]!;
    // ComfyUI batches the compatible entries in reverse order ([uncond, cond] for a plain pair), as many as
    // memory allows; here at most what a plain CFG call holds (two full latents), so areas never cost more.
    const maxItems = Math.max(1, Math.floor((2 * H * W) / (first.h * first.w)));
    const compatible = left.filter((p) => canBatch(first, p)).reverse();
    const group = compatible.slice(0, maxItems);
    const outs = await runGroup(group, sigma, ctx);
    group.forEach((p, i) => {
      preds.set(p, outs[i]!);
      left.splice(left.indexOf(p), 1);
    });
  }
  // One full-latent entry of weight 1 on a side: its prediction is the side's (x * 1 / (1 + 1e-37) == x in float32).
  const single = sides.map((_, side) => {
    const mine = toRun.filter((p) => p.side === side);
    const p = mine[0];
    return mine.length === 1 && p && !p.cond.mask && p.cond.strength === 1 && p.h === H && p.w === W ? preds.get(p)! : null;
  });
  if (single.every((s) => s)) return single as Float32Array[];
  const outs = sides.map(() => new Float32Array(x.length));
  const counts = sides.map(() => new Float32Array(x.length).fill(1e-37));
  for (const p of toRun) {
    const pred = preds.get(p)!;
    const out = outs[p.side]!;
    const count = counts[p.side]!;
    for (let b = 0; b < B; b++) {
      for (let c = 0; c < C; c++) {
        for (let i = 0; i < p.h; i++) {
          const dst = ((b * C + c) * H + p.y + i) * W + p.x;
          const src = ((b * C + c) * p.h + i) * p.w;
          const m = (b * p.h + i) * p.w;
          for (let j = 0; j < p.w; j++) {
            const mu = p.mult[m + j]!;
            out[dst + j] = out[dst + j]! + f32(pred[src + j]! * mu);
            count[dst + j] = count[dst + j]! + mu;
          }
        }
      }
    }
  }
  return outs.map((o, s) => {
    const cnt = counts[s]!;
    for (let i = 0; i < o.length; i++) o[i] = o[i]! / cnt[i]!;
    return o;
  });
}
