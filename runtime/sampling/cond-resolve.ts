/**
 * What ComfyUI does to conditioning lists once per sampling run (comfy/samplers.py process_conds):
 * fractional areas and masks resolved against the latent size, timestep ranges turned into sigmas, the
 * inpainting model's extra channels built, and every area entry given a twin on the other side.
 */
import { resizeNCHW } from '../image/resize.js';
import { f32 } from './f32.js';
import type { ModelSampling } from './model-sampling.js';
import { condEntries, pyRound } from './cond-entries.js';
import { SamplingValidationError, numel, type Conditioning, type ControlNetApplication, type Shape4 } from './types.js';

/** A ControlNet with its sigma window (active while endSigma <= sigma <= startSigma). */
export interface PreparedControl {
  app: ControlNetApplication;
  startSigma: number;
  endSigma: number;
}

/** ComfyUI's `model_conds`: what a twin copies from the entry whose prompt it borrows. */
export interface ModelConds {
  /** Context repeated to the latent batch [B, tokens, dim]. */
  context: Float32Array;
  tokens: number;
  dim: number;
  /** Inpainting-model channels for the full latent [B, k, H, W] (k = 0: none). */
  concat?: Float32Array;
  /** The entry these came from (per-entry model inputs such as SDXL's y). */
  entry: Conditioning;
}

/** One conditioning entry ready for calc_cond_batch. */
export interface ResolvedCond {
  model: ModelConds;
  /** (h, w, y, x) in latent cells, not yet clipped to the latent. */
  area?: [number, number, number, number];
  strength: number;
  /** Mask at latent size [maskBatch, H, W]. */
  mask?: Float32Array;
  maskBatch: number;
  maskStrength: number;
  startSigma?: number;
  endSigma?: number;
  controls: PreparedControl[];
  /** Set by the old ControlNetApply: the other side's plain entries borrow these ControlNets. */
  controlApplyToUncond: boolean;
}

export interface ResolveContext {
  shape: Shape4;
  ms: ModelSampling;
  /** Builds an entry's inpainting channels; absent for models without extra input channels. */
  concat?: (entry: Conditioning) => Float32Array;
}

/** comfy.utils.repeat_to_batch_size on the leading dimension. */
function repeatBatch(data: Float32Array, batch: number, target: number): Float32Array {
  if (batch === target) return data;
  const item = data.length / batch;
  const out = new Float32Array(item * target);
  for (let i = 0; i < target; i++) out.set(data.subarray((i % batch) * item, (i % batch + 1) * item), i * item);
  return out;
}

function prepareModelConds(kind: string, entry: Conditioning, ctx: ResolveContext): ModelConds {
  const [b, tokens, dim] = entry.contextShape;
  if (![b, tokens, dim].every((d) => Number.isInteger(d) && d > 0)) {
    throw new SamplingValidationError(`${kind} context shape [${entry.contextShape.join(', ')}] is invalid`);
  }
  if (entry.context.length !== b * tokens * dim) {
    throw new SamplingValidationError(`${kind} context has ${entry.context.length} values, shape [${entry.contextShape.join(', ')}] needs ${b * tokens * dim}`);
  }
  const out: ModelConds = { context: repeatBatch(entry.context, b, ctx.shape[0]), tokens, dim, entry };
  if (ctx.concat) out.concat = ctx.concat(entry);
  return out;
}

/** Bounding box of the non-zero cells of max|mask| over the batch, as ComfyUI's get_mask_aabb. */
function maskBoundsArea(mask: Float32Array, batch: number, H: number, W: number): [number, number, number, number] {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let any = false;
      for (let b = 0; b < batch && !any; b++) any = mask[(b * H + y) * W + x] !== 0;
      if (!any) continue;
      x0 = Math.min(x0, x);
      y0 = Math.min(y0, y);
      x1 = Math.max(x1, x);
      y1 = Math.max(y1, y);
    }
  }
  if (x1 < 0) return [8, 8, 0, 0];
  return [Math.max(8, y1 - y0 + 1), Math.max(8, x1 - x0 + 1), y0, x0];
}

function resolveEntry(kind: string, entry: Conditioning, ctx: ResolveContext): ResolvedCond {
  const [, , H, W] = ctx.shape;
  const r: ResolvedCond = {
    model: prepareModelConds(kind, entry, ctx),
    strength: entry.strength ?? 1,
    maskBatch: 0,
    maskStrength: entry.maskStrength ?? 1,
    controlApplyToUncond: entry.controlApplyToUncond ?? false,
    controls: (entry.controls ?? []).map((app) => {
      if (app.hint.length !== numel(app.hintShape)) {
        throw new SamplingValidationError(`${kind} ControlNet hint has ${app.hint.length} values, shape [${app.hintShape.join(', ')}] needs ${numel(app.hintShape)}`);
      }
      return { app, startSigma: ctx.ms.percentToSigma(app.startPercent ?? 0), endSigma: ctx.ms.percentToSigma(app.endPercent ?? 1) };
    }),
  };
  const a = entry.area;
  if (a) {
    r.area =
      a.unit === 'fraction'
        ? [Math.max(1, pyRound(a.height * H)), Math.max(1, pyRound(a.width * W)), pyRound(a.y * H), pyRound(a.x * W)]
        : [a.height, a.width, a.y, a.x];
    if (!r.area.every((v) => Number.isInteger(v) && v >= 0)) throw new SamplingValidationError(`${kind} area [${r.area.join(', ')}] is invalid`);
    if (r.area[2] >= H || r.area[3] >= W) {
      throw new SamplingValidationError(`${kind} area starts at (${r.area[3]}, ${r.area[2]}), outside the ${W}x${H} latent`);
    }
  }
  if (entry.mask) {
    const [mb, mh, mw] = entry.mask.shape;
    if (entry.mask.data.length !== mb * mh * mw) throw new SamplingValidationError(`${kind} mask has ${entry.mask.data.length} values, shape [${entry.mask.shape.join(', ')}]`);
    const sized = mh === H && mw === W ? entry.mask.data : resizeNCHW(entry.mask.data, [mb, 1, mh, mw], H, W, 'bilinear', false).data;
    r.mask = sized;
    r.maskBatch = mb;
    if (entry.setAreaToBounds) r.area = maskBoundsArea(sized, mb, H, W);
  }
  if (entry.startPercent !== undefined) r.startSigma = ctx.ms.percentToSigma(entry.startPercent);
  if (entry.endPercent !== undefined) r.endSigma = ctx.ms.percentToSigma(entry.endPercent);
  return r;
}

function sameArea(a: readonly number[], b: readonly number[]): boolean {
  return a.every((v, i) => v === b[i]);
}

/**
 * create_cond_with_same_area_if_none: an area entry of one side gets a copy on the other side, with the
 * prompt (model conds) of that side's smallest entry containing the area, or its first entry without one.
 */
function addTwin(others: ResolvedCond[], c: ResolvedCond): void {
  if (!c.area) return;
  const [ch, cw, cy, cx] = c.area;
  let smallest: ResolvedCond | undefined;
  for (const o of others) {
    if (o.area) {
      const [h, w, y, x] = o.area;
      if (cy >= y && cx >= x && y + h >= cy + ch && x + w >= cx + cw) {
        if (!smallest || !smallest.area || smallest.area[0] * smallest.area[1] > h * w) smallest = o;
      }
    } else if (!smallest) smallest = o;
  }
  if (!smallest) return;
  if (smallest.area && sameArea(smallest.area, c.area)) return;
  others.push({ ...c, model: smallest.model });
}

/**
 * Any number of guidance sides (ComfyUI's conds dict in order, positive first: e.g. DualCFGGuider's
 * positive, middle, negative), each resolved and twinned against every other side.
 */
export function resolveCondSides(sidesIn: Conditioning[], ctx: ResolveContext, names: string[] = []): ResolvedCond[][] {
  const sides = sidesIn.map((c, i) => condEntries(c).map((e) => resolveEntry(names[i] ?? (i === 0 ? 'positive' : 'negative'), e, ctx)));
  // In order: a later side's new twins are then looked at from the earlier sides too.
  for (let k = 0; k < sides.length; k++) {
    for (const c of [...sides[k]!]) {
      for (let kk = 0; kk < sides.length; kk++) if (kk !== k) addTwin(sides[kk]!, c);
    }
  }
  for (let k = 1; k < sides.length; k++) applyControlsToUncond(sides[0]!, sides[k]!);
  return sides;
}

/** Both sides' entries, resolved and twinned, in ComfyUI's order. */
export function resolveConds(positive: Conditioning, negative: Conditioning, ctx: ResolveContext): { cond: ResolvedCond[]; uncond: ResolvedCond[] } {
  const [cond, uncond] = resolveCondSides([positive, negative], ctx, ['positive', 'negative']) as [ResolvedCond[], ResolvedCond[]];
  return { cond, uncond };
}

/**
 * apply_empty_x_to_equal_area for 'control': when no plain negative entry has a ControlNet, the plain
 * negative entries take the ControlNets of the positive entries marked for it, in turn.
 */
function applyControlsToUncond(cond: ResolvedCond[], uncond: ResolvedCond[]): void {
  const donors = cond.filter((c) => !c.area && c.controlApplyToUncond && c.controls.length);
  if (!donors.length || uncond.some((u) => !u.area && u.controls.length)) return;
  const plain = uncond.flatMap((u, i) => (u.area ? [] : [i]));
  if (!plain.length) return;
  donors.forEach((d, k) => {
    const i = plain[k % plain.length]!;
    uncond[i] = { ...uncond[i]!, controls: d.controls };
  });
}

/** get_area_and_mult's timestep test: skipped when sigma > start or sigma < end. */
export function condActive(c: ResolvedCond, sigma: number): boolean {
  const s = f32(sigma);
  if (c.startSigma !== undefined && s > c.startSigma) return false;
  if (c.endSigma !== undefined && s < c.endSigma) return false;
  return true;
}
