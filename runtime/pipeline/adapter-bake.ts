/**
 * Folding adapters into fixed weights for int8 sampling. An int8 session feeds patched weights as codes it
 * quantises at run time (live strengths, no rebuild), which for a LoRA on every layer means merging and
 * quantising the whole UNet in every process. Baked, the merged weights compile like a checkpoint's: quantised
 * once at build and cached on disk under a key that includes the adapters' contents, so a later run (or
 * process) with the same LoRA and strength reads no LoRA at all. A new strength compiles again.
 */
import { createHash } from 'node:crypto';
import { defaultPrecision } from '../graph/precision.js';
import { mergeWeightSets, type MergeRule } from '../models/merged-weights.js';
import { UnetModel } from '../models/unet/model.js';
import { PatchedUnet, type AppliedAdapter } from './patched-model.js';

const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** A digest of what the adapters change: every patch's and norm's values, and the strengths. */
export function adapterContentHash(adapters: readonly AppliedAdapter[]): string {
  const h = createHash('sha256');
  for (const a of adapters) {
    h.update(JSON.stringify([a.strength, a.normStrength ?? 1, a.patches.length, a.norms?.size ?? 0]));
    for (const p of a.patches) {
      h.update(JSON.stringify([p.target, p.rank, p.alpha ?? null, p.rows ?? null, p.upShape, p.downShape, p.midShape ?? null]));
      h.update(bytes(p.up));
      h.update(bytes(p.down));
      if (p.mid) h.update(bytes(p.mid));
    }
    for (const [k, v] of a.norms ?? []) {
      h.update(k);
      h.update(bytes(v));
    }
  }
  return h.digest('hex').slice(0, 24);
}

/**
 * The model with its adapters merged into a new UNet's weights (forward patches and precision kept). Its
 * weights read the handle's merge lazily: only a cold compile reads them.
 */
export function bakeAdapters(m: PatchedUnet): PatchedUnet {
  const patched = new Set(m.patchedKeys());
  const prefix = m.base.weights.prefix;
  // strength_model 0, strength_patch 1: the merged tensor itself, exactly (0·w + v = v in float32).
  const rule: MergeRule = (name) => (patched.has(prefix + name) ? { strengthModel: 0, strengthPatch: 1 } : null);
  const ws = mergeWeightSets(m.base.weights, { weights: m.base.weights, read: (k) => m.overrides()?.get(k) }, rule, `baked:${adapterContentHash(m.adapters)}`);
  const unet = new UnetModel(ws, m.base.config);
  // Everything is compiled in: nothing is fed per run (an adapter applied later makes its keys patchable again).
  unet.overridable.clear();
  unet.precision = m.base.precision;
  let out = PatchedUnet.of(unet);
  for (const p of m.forwardPatches) out = out.withForwardPatch(p);
  return out;
}

/**
 * What a LoRA loader hands on: in int8, the baked model (merging first only when its compiled weights are not
 * cached yet); otherwise the live handle with its merge done now, large products on ORT's threads.
 */
export async function settleAdapters(m: PatchedUnet): Promise<PatchedUnet> {
  if ((m.base.precision ?? defaultPrecision()) !== 'int8' || !m.isPatched) {
    await m.prepare();
    return m;
  }
  const baked = bakeAdapters(m);
  if (!baked.base.plainSessionReady()) await m.prepare();
  return baked;
}
