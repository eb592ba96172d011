/**
 * Two models' weights merged key by key the way ComfyUI's ModelPatcher applies a model-merge patch:
 * `w = W1; if strength_model != 1: w *= strength_model; w += strength_patch * W2`, in float32. The result
 * is a read-only, lazily computed view with the first model's keys and shapes; nothing is written to either
 * model, so every other user of them keeps seeing the unmerged weights.
 */
import type { SafetensorsFile, TensorInfo } from '../safetensors/reader.js';
import { WeightSet } from './weights.js';

/** Per relative key: the two strengths, or null to leave W1 as it is (keys model2 does not have, skipped keys). */
export type MergeRule = (name: string) => { strengthModel: number; strengthPatch: number } | null;

const f32 = Math.fround;

/** Merges one tensor; a shape mismatch leaves W1 * strength_model, as ComfyUI does after its warning. */
export function mergeTensor(w1: Float32Array, w2: Float32Array | undefined, strengthModel: number, strengthPatch: number): Float32Array {
  const out = Float32Array.from(w1);
  const sm = f32(strengthModel);
  if (strengthModel !== 1) for (let i = 0; i < out.length; i++) out[i] = f32(out[i]! * sm);
  if (!w2 || w2.length !== out.length) return out;
  const sp = f32(strengthPatch);
  for (let i = 0; i < out.length; i++) out[i] = f32(out[i]! + f32(sp * w2[i]!));
  return out;
}

/** The subset of SafetensorsFile that WeightSet and the adapter code read, served from a merge. */
class MergedTensorFile {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;

  constructor(
    readonly path: string,
    private readonly base: SafetensorsFile,
    private readonly mergedKey: (key: string) => Float32Array | undefined,
  ) {
    this.tensors = base.tensors;
    this.metadata = base.metadata;
  }

  keys(): string[] {
    return this.base.keys();
  }
  has(name: string): boolean {
    return this.base.has(name);
  }
  info(name: string): TensorInfo {
    return this.base.info(name);
  }
  readFloat32(name: string): Float32Array {
    return this.mergedKey(name) ?? this.base.readFloat32(name);
  }
}

export interface MergeSource {
  weights: WeightSet;
  /** Model2's effective tensor for a full key of its own file (its adapters applied), if it has that key. */
  read(fullKey: string): Float32Array | undefined;
}

/**
 * A WeightSet over `w1`'s keys whose tensors are the merge with `other`, matched by name relative to each
 * side's prefix. `tag` must describe the merge (node, strengths) so compiled sessions are cached per merge.
 */
export function mergeWeightSets(w1: WeightSet, other: MergeSource, rule: MergeRule, tag: string): WeightSet {
  const prefix = w1.prefix;
  const w2 = other.weights;
  const merged = (key: string): Float32Array | undefined => {
    if (!key.startsWith(prefix)) return undefined;
    const name = key.slice(prefix.length);
    const r = rule(name);
    if (!r || !w2.has(name)) return undefined;
    const shape1 = w1.shape(name);
    const shape2 = w2.shape(name);
    const same = shape1.length === shape2.length && shape1.every((d, i) => d === shape2[i]);
    return mergeTensor(w1.file.readFloat32(key), same ? other.read(w2.prefix + name) : undefined, r.strengthModel, r.strengthPatch);
  };
  const file = new MergedTensorFile(`${w1.file.path} (merged with ${w2.file.path}, ${tag})`, w1.file, merged);
  return new WeightSet(file as unknown as SafetensorsFile, prefix, `merge(${w1.contentId}|${w2.contentId}|${tag})`);
}
