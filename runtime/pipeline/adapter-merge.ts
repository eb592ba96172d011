/**
 * Adapter merging for patched-model handles, tuned for the one interactive operation that repeats: changing
 * a strength. The merge itself is that of `computePatchedWeights` (adapters/merge.ts), bit for bit; what
 * differs is that the unscaled LoRA product up@down of each patch is kept in a bounded cache, so a new
 * strength costs one scaled add per patched value instead of a rank-r matrix product.
 */
import type { LoraPatch } from '../adapters/lora-format.js';
import { MergeError, blendNorm, loraProduct, loraScale, type AdapterApplication } from '../adapters/merge.js';

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/**
 * Least-recently-used products by patch object. Patch objects are shared by every handle derived from the
 * same parsed adapter, so a strength change finds them. Bounded by bytes: a LoRA on every layer of a full
 * model has products as large as the model, and those are better recomputed than held.
 */
export class LoraProductCache {
  private readonly entries = new Map<LoraPatch, Float32Array>();
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(readonly budgetBytes: number) {}

  get sizeBytes(): number {
    return this.bytes;
  }

  product(patch: LoraPatch): Float32Array {
    const cached = this.entries.get(patch);
    if (cached) {
      this.hits++;
      // Re-insert to mark as most recently used (Map keeps insertion order).
      this.entries.delete(patch);
      this.entries.set(patch, cached);
      return cached;
    }
    this.misses++;
    const p = loraProduct(patch);
    if (p.byteLength <= this.budgetBytes) {
      this.entries.set(patch, p);
      this.bytes += p.byteLength;
      for (const [k, v] of this.entries) {
        if (this.bytes <= this.budgetBytes) break;
        this.entries.delete(k);
        this.bytes -= v.byteLength;
      }
    }
    return p;
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}

function budgetFromEnv(): number {
  const mb = Number(process.env.RESFLOW_LORA_CACHE_MB);
  // 512 MiB holds the SD1.5 ResAdapter's products (~210 MB) with room for a style LoRA's attention layers.
  return (Number.isFinite(mb) && mb >= 0 ? mb : 512) * 1024 * 1024;
}

export const sharedProductCache = new LoraProductCache(budgetFromEnv());

/** Adds strength·scale·product into `dst` at the patch's rows; the rounding is merge.ts's addLoraInPlace. */
function addScaledProduct(dst: Float32Array, patch: LoraPatch, strength: number, cache: LoraProductCache): void {
  const outRows = patch.upShape[0]!;
  const product = cache.product(patch);
  const inner = product.length / outRows;
  const rowOffset = patch.rows ? patch.rows.start : 0;
  const fits = patch.rows
    ? Number.isInteger(inner) && dst.length % inner === 0 && (rowOffset + outRows) * inner <= dst.length
    : dst.length === product.length;
  if (!fits) {
    throw new MergeError(patch.target, `LoRA "${patch.source}" (${outRows}×${inner}, rank ${patch.rank}) does not fit a tensor of ${dst.length} values`);
  }
  const scale = loraScale(patch, strength);
  const off = rowOffset * inner;
  for (let i = 0; i < product.length; i++) dst[off + i] = dst[off + i]! + Math.fround(scale * product[i]!);
}

/**
 * The tensors `adapters` change, applied in order to what `baseLookup` returns (same contract and result as
 * computePatchedWeights): per adapter norms first, then its LoRA; strength 0 skips the adapter entirely.
 */
export function mergeAdapters(
  baseLookup: (key: string) => Float32Array | undefined,
  adapters: readonly AdapterApplication[],
  cache: LoraProductCache = sharedProductCache,
): Map<string, Float32Array> {
  const result = new Map<string, Float32Array>();
  const current = (key: string): Float32Array => {
    const owned = result.get(key);
    if (owned) return owned;
    const base = baseLookup(key);
    if (!base) throw new MergeError(key, 'the model has no such tensor');
    return base;
  };
  for (const adapter of adapters) {
    if (adapter.strength === 0) continue;
    const t = adapter.normStrength ?? 1;
    if (adapter.norms && t !== 0) {
      for (const [key, value] of adapter.norms) result.set(key, blendNorm(current(key), value, t, key));
    }
    for (const patch of adapter.patches) {
      let dst = result.get(patch.target);
      if (!dst) {
        // A copy: the lookup may hand out arrays it keeps (a cache, a session's defaults).
        dst = Float32Array.from(current(patch.target));
        result.set(patch.target, dst);
      }
      addScaledProduct(dst, patch, adapter.strength, cache);
    }
  }
  return result;
}

/** Checks a patch against the target's shape, so a mismatch fails when the adapter is attached, naming both keys. */
export function checkPatchFits(patch: LoraPatch, targetShape: readonly number[]): string | undefined {
  const inner = numel(targetShape.slice(1));
  const rows = patch.rows ? patch.rows.count : targetShape[0]!;
  const downInner = patch.mid && patch.midShape ? numel(patch.downShape.slice(1)) * patch.midShape[2]! * patch.midShape[3]! : numel(patch.downShape.slice(1));
  if (targetShape.length < 2) return `target [${targetShape.join(', ')}] is not a linear or conv weight`;
  if (patch.upShape[0] !== rows) return `up weight [${patch.upShape.join(', ')}] has ${patch.upShape[0]} outputs, the layer [${targetShape.join(', ')}] has ${rows}`;
  if (downInner !== inner) return `down weight [${patch.downShape.join(', ')}] does not fit the layer [${targetShape.join(', ')}] (input size ${inner})`;
  if (patch.rows && patch.rows.start + patch.rows.count > targetShape[0]!) return `rows ${patch.rows.start}..${patch.rows.start + patch.rows.count - 1} exceed the layer's ${targetShape[0]}`;
  return undefined;
}
