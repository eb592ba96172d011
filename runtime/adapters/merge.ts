/**
 * Merge math for LoRA patches and ResAdapter norm replacement. Pure functions on Float32Arrays: inputs are
 * never written to, every changed tensor is a fresh array.
 *
 *   W' = W + strength · (alpha / rank) · reshape(up.flatten(1) @ down.flatten(1), W.shape)
 *
 * Rounding follows ComfyUI's float32 path (product rounded to float32, scaled by the float32 factor, then
 * added), with the dot products themselves accumulated in double.
 */
import type { LoraPatch } from './lora-format.js';

export interface AdapterApplication {
  patches: readonly LoraPatch[];
  /** Replacement tensors by checkpoint key (ResAdapter GroupNorms). */
  norms?: ReadonlyMap<string, Float32Array>;
  strength: number;
  /** 1 (default) replaces the base norms; t in (0,1) blends base·(1-t) + adapter·t; 0 keeps the base. */
  normStrength?: number;
}

export class MergeError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(`${key}: ${message}`);
    this.name = 'MergeError';
  }
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** The float32 factor ComfyUI multiplies the LoRA product by: strength · alpha / rank (alpha absent → 1). */
export function loraScale(patch: Pick<LoraPatch, 'alpha' | 'rank'>, strength: number): number {
  return Math.fround(strength * (patch.alpha === undefined ? 1 : patch.alpha / patch.rank));
}

/**
 * The down projection as one [rank, inner] matrix. A LoCon mid tensor is folded in first:
 * down'[a, i, y, x] = Σ_b mid[a, b, y, x] · down[b, i].
 */
function effectiveDown(patch: LoraPatch): { down: Float32Array; inner: number } {
  const r = patch.rank;
  if (!patch.mid || !patch.midShape) return { down: patch.down, inner: numel(patch.downShape.slice(1)) };
  const inFlat = numel(patch.downShape.slice(1));
  const k = patch.midShape[2]! * patch.midShape[3]!;
  const inner = inFlat * k;
  const out = new Float32Array(r * inner);
  for (let a = 0; a < r; a++) {
    for (let i = 0; i < inFlat; i++) {
      for (let yx = 0; yx < k; yx++) {
        let s = 0;
        for (let b = 0; b < r; b++) s += patch.mid[(a * r + b) * k + yx]! * patch.down[b * inFlat + i]!;
        out[a * inner + i * k + yx] = s;
      }
    }
  }
  return { down: out, inner };
}

/** Adds strength · scale · up@down into `dst` (owned by the caller), at the patch's rows if it has any. */
function addLoraInPlace(dst: Float32Array, patch: LoraPatch, strength: number): void {
  const { down, inner } = effectiveDown(patch);
  const r = patch.rank;
  const outRows = patch.upShape[0]!;
  const rowOffset = patch.rows ? patch.rows.start : 0;
  const fits = patch.rows
    ? dst.length % inner === 0 && (rowOffset + outRows) * inner <= dst.length
    : dst.length === outRows * inner;
  if (!fits || patch.up.length !== outRows * r || down.length !== r * inner) {
    throw new MergeError(patch.target, `LoRA "${patch.source}" (${outRows}×${inner}, rank ${r}) does not fit a tensor of ${dst.length} values`);
  }
  const scale = loraScale(patch, strength);
  const acc = new Float64Array(inner);
  for (let o = 0; o < outRows; o++) {
    acc.fill(0);
    for (let j = 0; j < r; j++) {
      const u = patch.up[o * r + j]!;
      if (u === 0) continue;
      const base = j * inner;
      for (let c = 0; c < inner; c++) acc[c]! += u * down[base + c]!;
    }
    const off = (rowOffset + o) * inner;
    for (let c = 0; c < inner; c++) dst[off + c] = dst[off + c]! + Math.fround(scale * Math.fround(acc[c]!));
  }
}

/** `weight` with one LoRA patch merged at `strength`, as a new array. */
export function applyLora(weight: Float32Array, patch: LoraPatch, strength: number): Float32Array {
  const out = Float32Array.from(weight);
  if (strength !== 0) addLoraInPlace(out, patch, strength);
  return out;
}

/** The unscaled product up@down (mid folded in), shaped like the target weight or its row slice. */
export function loraProduct(patch: LoraPatch): Float32Array {
  const { inner } = effectiveDown(patch);
  const zero = new Float32Array(patch.upShape[0]! * inner);
  const unscaled: LoraPatch = { ...patch, alpha: undefined, rows: undefined };
  addLoraInPlace(zero, unscaled, 1);
  return zero;
}

/** Linear blend base·(1-t) + adapter·t; t = 1 is a plain copy of the adapter tensor. */
export function blendNorm(base: Float32Array, adapter: Float32Array, t: number, key = 'norm'): Float32Array {
  if (base.length !== adapter.length) throw new MergeError(key, `adapter tensor has ${adapter.length} values, the model's has ${base.length}`);
  if (t === 1) return Float32Array.from(adapter);
  const out = new Float32Array(base.length);
  for (let i = 0; i < out.length; i++) out[i] = base[i]! + t * (adapter[i]! - base[i]!);
  return out;
}

/**
 * The tensors that change when `adapters` are applied in order to the weights `baseLookup` returns; keys
 * that no adapter touches are absent. Per adapter, norms are replaced first and its LoRA is added on top
 * (the order ComfyUI-ResAdapter uses); a later adapter sees the result of the earlier ones.
 *
 * Strength 0 leaves the model untouched, norms included, as the ResAdapter node does; any other strength
 * (negative too, as in that node) replaces the norms, scaled only by `normStrength`.
 */
/**
 * Adds one LoRA patch to a weight: into `owned` (an array this merge already made) or, when undefined, into a
 * fresh copy of `src`. Returns the array that now holds the result.
 */
export type PatchAdder = (owned: Float32Array | undefined, src: Float32Array, patch: LoraPatch, strength: number) => Float32Array;

const addPatchDirect: PatchAdder = (owned, src, patch, strength) => {
  if (!owned) return applyLora(src, patch, strength);
  addLoraInPlace(owned, patch, strength);
  return owned;
};

/**
 * The tensors being merged: what each key holds so far (an array this merge made, else the base tensor).
 * Shared by the synchronous merge below and the asynchronous one that computes large products elsewhere.
 */
export class PatchedWeights {
  readonly result = new Map<string, Float32Array>();

  constructor(private readonly baseLookup: (key: string) => Float32Array | undefined) {}

  current(key: string): Float32Array {
    const owned = this.result.get(key);
    if (owned) return owned;
    const base = this.baseLookup(key);
    if (!base) throw new MergeError(key, 'the model has no such tensor');
    return base;
  }

  /** Replaces (or blends, t < 1) the adapter's norms. */
  applyNorms(norms: ReadonlyMap<string, Float32Array>, t: number): void {
    for (const [key, value] of norms) this.result.set(key, blendNorm(this.current(key), value, t, key));
  }
}

/** Per adapter, in order: its norm replacement (when any) and then each LoRA patch at the adapter's strength. */
export type MergeStep = { kind: 'norms'; norms: ReadonlyMap<string, Float32Array>; t: number } | { kind: 'lora'; patch: LoraPatch; strength: number };

export function mergeSteps(adapters: readonly AdapterApplication[]): MergeStep[] {
  const steps: MergeStep[] = [];
  for (const adapter of adapters) {
    if (adapter.strength === 0) continue;
    const t = adapter.normStrength ?? 1;
    if (adapter.norms && t !== 0) steps.push({ kind: 'norms', norms: adapter.norms, t });
    for (const patch of adapter.patches) steps.push({ kind: 'lora', patch, strength: adapter.strength });
  }
  return steps;
}

export function computePatchedWeights(
  baseLookup: (key: string) => Float32Array | undefined,
  adapters: readonly AdapterApplication[],
  addPatch: PatchAdder = addPatchDirect,
): Map<string, Float32Array> {
  const w = new PatchedWeights(baseLookup);
  for (const step of mergeSteps(adapters)) {
    if (step.kind === 'norms') w.applyNorms(step.norms, step.t);
    else {
      const owned = w.result.get(step.patch.target);
      w.result.set(step.patch.target, addPatch(owned, owned ?? w.current(step.patch.target), step.patch, step.strength));
    }
  }
  return w.result;
}
