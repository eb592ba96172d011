/**
 * ComfyUI's model and CLIP merge nodes over our handles. A merge makes a new model over a lazily merged
 * weight view (runtime/models/merged-weights.ts) with its own compiled session; both inputs stay as they
 * are, so other branches of a graph keep rendering the unmerged models. Model2 contributes its effective
 * weights (its adapters applied); model1's adapters and forward patches are re-attached on top of the merge.
 */
import { ClipTextEncoder } from '../models/clip/index.js';
import { OpenClipTextEncoder } from '../models/openclip/encoder.js';
import { SdxlTextEncoder } from '../models/sdxl/conditioning.js';
import { mergeWeightSets, type MergeRule, type MergeSource } from '../models/merged-weights.js';
import { UnetModel } from '../models/unet/model.js';
import type { WeightSet } from '../models/weights.js';
import { PatchedClip, PatchedUnet, type AppliedAdapter } from './patched-model.js';

export type { MergeRule } from '../models/merged-weights.js';

/** ModelMergeSimple / CLIPMergeSimple: ratio is model1's share. */
export const simpleRule = (ratio: number): MergeRule => () => ({ strengthModel: ratio, strengthPatch: 1 - ratio });
export const addRule: MergeRule = () => ({ strengthModel: 1, strengthPatch: 1 });
/** ModelMergeSubtract / CLIPMergeSubtract: multiplier * (W1 - W2); model1 is scaled too. */
export const subtractRule = (multiplier: number): MergeRule => () => ({ strengthModel: multiplier, strengthPatch: -multiplier });

/**
 * ModelMergeBlocks / ModelMergeSDXL: each key takes the ratio of the longest argument name that prefixes it;
 * keys no argument prefixes take the first argument's ratio (ComfyUI passes kwargs in prompt order).
 */
export function blocksRule(ratios: ReadonlyArray<readonly [string, number]>): MergeRule {
  if (!ratios.length) throw new Error('block merge needs at least one ratio');
  return (name) => {
    let ratio = ratios[0]![1];
    let best = 0;
    for (const [prefix, r] of ratios) {
      if (name.startsWith(prefix) && prefix.length > best) {
        ratio = r;
        best = prefix.length;
      }
    }
    return { strengthModel: ratio, strengthPatch: 1 - ratio };
  };
}

/** CLIP merges skip position ids and logit scale (not weights); everything else of clip2 merges. */
export function clipRule(rule: MergeRule): MergeRule {
  return (name) => (name.endsWith('position_ids') || name.endsWith('logit_scale') ? null : rule(name));
}

function adapterTag(adapters: readonly AppliedAdapter[]): string {
  return adapters.map((a) => `${a.id}@${a.strength}/${a.normStrength ?? ''}`).join(',');
}

function source(weights: WeightSet, overrides: ReadonlyMap<string, Float32Array> | undefined): MergeSource {
  return { weights, read: (k) => overrides?.get(k) ?? (weights.file.has(k) ? weights.file.readFloat32(k) : undefined) };
}

export function mergeUnets(m1: PatchedUnet, m2: PatchedUnet, rule: MergeRule, tag: string): PatchedUnet {
  const ws = mergeWeightSets(m1.base.weights, source(m2.base.weights, m2.overrides()), rule, `${tag};${adapterTag(m2.adapters)}`);
  let out = PatchedUnet.of(new UnetModel(ws, m1.base.config));
  for (const a of m1.adapters) out = out.withAdapter(a);
  for (const p of m1.forwardPatches) out = out.withForwardPatch(p);
  return out;
}

export async function mergeClips(c1: PatchedClip, c2: PatchedClip, rule: MergeRule, tag: string): Promise<PatchedClip> {
  const ws = mergeWeightSets(c1.base.weights, source(c2.base.weights, c2.overrides()), clipRule(rule), `${tag};${adapterTag(c2.adapters)}`);
  const enc = await ClipTextEncoder.load(ws, { config: c1.base.config, specialTokens: c1.base.specialTokens });
  let out = PatchedClip.of(enc, c1.clipSkip);
  for (const a of c1.adapters) out = out.withAdapter(a);
  return out;
}

/** SDXL CLIP merges: both towers (CLIP-L and OpenCLIP bigG) merged key by key with the same rule. */
export async function mergeSdxlText(t1: SdxlTextEncoder, t2: SdxlTextEncoder, rule: MergeRule, tag: string): Promise<SdxlTextEncoder> {
  const r = clipRule(rule);
  const l = mergeWeightSets(t1.clipL.weights, source(t2.clipL.weights, undefined), r, `${tag};L`);
  const g = mergeWeightSets(t1.clipG.weights, source(t2.clipG.weights, undefined), r, `${tag};G`);
  const clipL = await ClipTextEncoder.load(l, { config: t1.clipL.config, specialTokens: t1.clipL.specialTokens, layerNormIntermediate: false });
  const clipG = await OpenClipTextEncoder.load(g, { config: t1.clipG.config, layerNormIntermediate: false });
  return SdxlTextEncoder.of(clipL, clipG);
}
