/**
 * Text encoders as one kind of patchable handle, whatever their layout (HF CLIP or OpenCLIP): what a CLIP
 * value of any model family holds, one per encoder the family describes. LoRA patching and merging act on
 * the list alike; only the family's text encoding knows how the encoders' outputs combine.
 */
import type { KeyShapeTable } from '../adapters/arch-tables.js';
import type { LoraPatch, ParsedLora } from '../adapters/lora-format.js';
import { mergeWeightSets, type MergeRule } from '../models/merged-weights.js';
import type { SafetensorsFile } from '../safetensors/reader.js';
import { cachedLora } from './adapter-cache.js';
import { checkpointKeyShapes } from './adapter-loaders.js';
import { clipRule } from './model-merge.js';
import { PatchedClip, type AppliedAdapter } from './patched-model.js';
import { PatchedOpenClip, splitTextPatches } from './patched-text.js';

export type PatchedTextEncoder = PatchedClip | PatchedOpenClip;

/** The key-shape table a LoRA resolves against: every file the model's parts come from (usually one checkpoint). */
export function loraTableFor(files: Iterable<SafetensorsFile>): KeyShapeTable {
  const set = new Set(files);
  if (set.size === 0) throw new Error('a LoRA needs a model or a text encoder to apply to');
  if (set.size === 1) return checkpointKeyShapes([...set][0]!);
  return new Map([...set].flatMap((f) => [...checkpointKeyShapes(f)]));
}

/** A LoRA file parsed against that table (through the parsed-adapter cache, so a strength change does not re-read it). */
export function parseLoraFor(path: string, files: Iterable<SafetensorsFile>): ParsedLora {
  return cachedLora(path, loraTableFor(files));
}

/** Text-encoder patches stacked on the encoder whose keys they target (each encoder owns its key prefix). */
export function withTextLora(encoders: readonly PatchedTextEncoder[], patches: readonly LoraPatch[], strength: number, id: string, label = id): PatchedTextEncoder[] {
  const split = splitTextPatches(
    patches,
    encoders.map((e) => e.base.weights.prefix),
  );
  return encoders.map((e, i) => (split[i]!.length ? e.withAdapter({ id, label, patches: split[i]!, strength }) : e));
}

function adapterTag(adapters: readonly AppliedAdapter[]): string {
  return adapters.map((a) => `${a.id}@${a.strength}/${a.normStrength ?? ''}`).join(',');
}

/**
 * CLIPMerge* for one encoder: e1's weights with e2's (its LoRAs merged in) combined key by key by `rule`,
 * reloaded as an encoder of e1's layout and options, with e1's adapters stacked on again.
 */
export async function mergeTextEncoder(e1: PatchedTextEncoder, e2: PatchedTextEncoder, rule: MergeRule, tag: string): Promise<PatchedTextEncoder> {
  if (e1 instanceof PatchedClip !== e2 instanceof PatchedClip) throw new Error('cannot merge an OpenCLIP text encoder with a CLIP one');
  const o2 = e2.overrides();
  const w2 = e2.base.weights;
  const src = { weights: w2, read: (k: string) => o2?.get(k) ?? (w2.file.has(k) ? w2.file.readFloat32(k) : undefined) };
  const ws = mergeWeightSets(e1.base.weights, src, clipRule(rule), `${tag};${w2.prefix};${adapterTag(e2.adapters)}`);
  if (e1 instanceof PatchedClip) {
    let out = PatchedClip.of(await e1.base.withWeights(ws), e1.clipSkip);
    for (const a of e1.adapters) out = out.withAdapter(a);
    return out;
  }
  let out = PatchedOpenClip.of(await e1.base.withWeights(ws));
  for (const a of e1.adapters) out = out.withAdapter(a);
  return out;
}
