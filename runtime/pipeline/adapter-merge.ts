/**
 * Adapter merging for patched-model handles, tuned for the one interactive operation that repeats: changing
 * a strength. The merge itself is that of `computePatchedWeights` (adapters/merge.ts), bit for bit; what
 * differs is that the unscaled LoRA product up@down of each patch is kept in a bounded cache, so a new
 * strength costs one scaled add per patched value instead of a rank-r matrix product.
 */
import type { LoraPatch } from '../adapters/lora-format.js';
import { MergeError, PatchedWeights, computePatchedWeights, loraProduct, loraScale, mergeSteps, type AdapterApplication } from '../adapters/merge.js';
import { ortLoraProduct, wantsOrtProduct } from './lora-product-ort.js';

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/**
 * Least-recently-used merge inputs, bounded by bytes: the unscaled product of each LoRA patch (by patch
 * object, shared by every handle derived from one parsed adapter) and the base tensors of patched keys (by
 * file and key; decoding F16 from disk costs more than the merge). A LoRA on every layer of a full model
 * needs as much as the model itself, and that is better recomputed than held, hence the budget.
 */
export class LoraProductCache {
  private readonly entries = new Map<object | string, Float32Array>();
  private readonly fileIds = new WeakMap<object, number>();
  private nextFileId = 0;
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(readonly budgetBytes: number) {}

  get sizeBytes(): number {
    return this.bytes;
  }

  private hit(key: object | string): Float32Array | undefined {
    const cached = this.entries.get(key);
    if (cached) {
      this.hits++;
      // Re-inserted to mark it most recently used (a Map iterates in insertion order).
      this.entries.delete(key);
      this.entries.set(key, cached);
    }
    return cached;
  }

  private lookup(key: object | string, compute: () => Float32Array): Float32Array {
    return this.hit(key) ?? this.store(key, compute());
  }

  private store(key: object | string, value: Float32Array): Float32Array {
    this.misses++;
    if (value.byteLength <= this.budgetBytes) {
      this.entries.set(key, value);
      this.bytes += value.byteLength;
      for (const [k, v] of this.entries) {
        if (this.bytes <= this.budgetBytes) break;
        this.entries.delete(k);
        this.bytes -= v.byteLength;
      }
    }
    return value;
  }

  /** up@down of a patch, float32-rounded, unscaled. Callers must not write to it. */
  product(patch: LoraPatch): Float32Array {
    return this.lookup(patch, () => loraProduct(patch));
  }

  /** As `product`, with large products computed on ORT's threads (see lora-product-ort.ts). */
  async productAsync(patch: LoraPatch): Promise<Float32Array> {
    return this.hit(patch) ?? this.store(patch, wantsOrtProduct(patch) ? await ortLoraProduct(patch) : loraProduct(patch));
  }

  /** A base tensor as `read` returns it, cached per (file object, key). Callers must not write to it. */
  baseTensor(file: object, key: string, read: () => Float32Array): Float32Array {
    let id = this.fileIds.get(file);
    if (id === undefined) this.fileIds.set(file, (id = this.nextFileId++));
    return this.lookup(`${id}#${key}`, read);
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}

function budgetFromEnv(): number {
  const mb = Number(process.env.RESFLOW_LORA_CACHE_MB);
  // 1 GiB holds the SD1.5 ResAdapter's products and base convs (~420 MB) with room for a style LoRA.
  return (Number.isFinite(mb) && mb >= 0 ? mb : 1024) * 1024 * 1024;
}

export const sharedProductCache = new LoraProductCache(budgetFromEnv());

/**
 * dst = src + strength·scale·product at the patch's rows (src may be dst itself); the rounding is that of
 * merge.ts's addLoraInPlace. Writing into a fresh array instead of copying first saves a pass over memory.
 */
function addScaledProduct(dst: Float32Array, src: Float32Array, patch: LoraPatch, strength: number, product: Float32Array): void {
  const outRows = patch.upShape[0]!;
  const inner = product.length / outRows;
  const rowOffset = patch.rows ? patch.rows.start : 0;
  const fits = patch.rows
    ? Number.isInteger(inner) && src.length % inner === 0 && (rowOffset + outRows) * inner <= src.length
    : src.length === product.length;
  if (!fits) {
    throw new MergeError(patch.target, `LoRA "${patch.source}" (${outRows}×${inner}, rank ${patch.rank}) does not fit a tensor of ${src.length} values`);
  }
  if (patch.rows && dst !== src) dst.set(src);
  const scale = loraScale(patch, strength);
  const off = rowOffset * inner;
  const n = product.length;
  for (let i = 0; i < n; i++) dst[off + i] = src[off + i]! + Math.fround(scale * product[i]!);
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
  const t0 = performance.now();
  try {
    return mergeAdaptersNow(baseLookup, adapters, cache);
  } finally {
    mergeTimings.count++;
    mergeTimings.totalMs += performance.now() - t0;
  }
}

/** Time spent merging adapter weights in this process (benches read it to price a strength change). */
export const mergeTimings = { count: 0, totalMs: 0 };

function mergeAdaptersNow(
  baseLookup: (key: string) => Float32Array | undefined,
  adapters: readonly AdapterApplication[],
  cache: LoraProductCache,
): Map<string, Float32Array> {
  return computePatchedWeights(baseLookup, adapters, (owned, src, patch, strength) => {
    // Never written in place unless this merge made the array: the lookup may hand out arrays it keeps.
    const dst = owned ?? new Float32Array(src.length);
    addScaledProduct(dst, src, patch, strength, cache.product(patch));
    return dst;
  });
}

/**
 * `mergeAdapters` with the large LoRA products computed on ORT (float32 GEMM) instead of the JS loop: what a
 * handle uses when it can wait (a LoRA loader node), so a LoRA on every layer costs seconds, not a minute.
 */
export async function mergeAdaptersAsync(
  baseLookup: (key: string) => Float32Array | undefined,
  adapters: readonly AdapterApplication[],
  cache: LoraProductCache = sharedProductCache,
): Promise<Map<string, Float32Array>> {
  const t0 = performance.now();
  try {
    const w = new PatchedWeights(baseLookup);
    for (const step of mergeSteps(adapters)) {
      if (step.kind === 'norms') {
        w.applyNorms(step.norms, step.t);
        continue;
      }
      const { patch, strength } = step;
      const product = await cache.productAsync(patch);
      const src = w.current(patch.target);
      const dst = w.result.get(patch.target) ?? new Float32Array(src.length);
      addScaledProduct(dst, src, patch, strength, product);
      w.result.set(patch.target, dst);
    }
    return w.result;
  } finally {
    mergeTimings.count++;
    mergeTimings.totalMs += performance.now() - t0;
  }
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
