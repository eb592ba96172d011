/**
 * What every family's CLIP does alike: built from the family's encoder list, patched by LoRA, stopped at a
 * layer, merged and saved, the same way for one encoder or two. Only text encoding (how the encoders'
 * outputs and the embeddings combine into conditioning) is the family's own (families.ts).
 */
import { MODEL_FAMILIES, modelFamily, type ModelFamily } from '../../runtime/models/families/registry.js';
import type { TextEncoderSpec } from '../../runtime/models/families/types.js';
import type { SavePart } from '../../runtime/pipeline/checkpoint-save.js';
import type { MergeRule } from '../../runtime/pipeline/model-merge.js';
import { loadLoraForModels } from '../../runtime/pipeline/adapter-loaders.js';
import { PatchedClip, splitPatches } from '../../runtime/pipeline/patched-model.js';
import { PatchedOpenClip } from '../../runtime/pipeline/patched-text.js';
import { mergeTextEncoder, parseLoraFor, withTextLora, type PatchedTextEncoder } from '../../runtime/pipeline/text-encoders.js';
import type { ClipTokenizer } from '../../runtime/text/index.js';
import type { ClipValue, ModelValue } from './types.js';

export interface LoraStrengths {
  name: string;
  model: number;
  clip: number;
}

/** A loaded CLIP: `encoders` in the order of the family's text encoders, at the family's default layer. */
export function clipValueOf(family: ModelFamily, encoders: readonly PatchedTextEncoder[], tokenizer: ClipTokenizer): ClipValue {
  if (encoders.length !== family.textEncoders.length) {
    throw new Error(`${family.label} has ${family.textEncoders.length} text encoders, ${encoders.length} were loaded`);
  }
  return {
    family: family.id as ClipValue['family'],
    encoders: family.textEncoders.map((spec, i) => ({ spec, encoder: encoders[i]! })),
    tokenizer,
    clipSkip: family.conditioning.defaultClipSkip,
  };
}

function encoderOf(c: ClipValue, name: TextEncoderSpec['name']): PatchedTextEncoder {
  const e = c.encoders.find((x) => x.spec.name === name);
  if (!e) throw new Error(`this CLIP has no ${name} text encoder (it has ${c.encoders.map((x) => x.spec.name).join(', ')})`);
  return e.encoder;
}

/** The HF-layout CLIP encoder `name` of a CLIP (e.g. clip_l). */
export function clipEncoder(c: ClipValue, name: TextEncoderSpec['name']): PatchedClip {
  const e = encoderOf(c, name);
  if (!(e instanceof PatchedClip)) throw new Error(`the ${name} text encoder of this CLIP is not in the CLIP layout`);
  return e;
}

/** The OpenCLIP encoder `name` of a CLIP (e.g. clip_g). */
export function openClipEncoder(c: ClipValue, name: TextEncoderSpec['name']): PatchedOpenClip {
  const e = encoderOf(c, name);
  if (!(e instanceof PatchedOpenClip)) throw new Error(`the ${name} text encoder of this CLIP is not in the OpenCLIP layout`);
  return e;
}

/** CLIPSetLastLayer(-k): every encoder stops at layer -k. */
export function withLastLayer(c: ClipValue, k: number): ClipValue {
  return { ...c, clipSkip: k };
}

/** LoraLoader: UNet keys at strength.model, each text-encoder key on the encoder that holds it at strength.clip. */
export function addLora(m: ModelValue, c: ClipValue, path: string, s: LoraStrengths): [ModelValue, ClipValue] {
  if (s.model === 0 && s.clip === 0) return [m, c];
  const parsed = parseLoraFor(path, [m.unet.base.weights.file, ...c.encoders.map((e) => e.encoder.base.weights.file)]);
  const unet = loadLoraForModels(m.unet, undefined, parsed, s.model, 0).model!;
  const clipPatches = splitPatches(parsed.patches).clip;
  if (!clipPatches.length || s.clip === 0) return [{ ...m, unet }, c];
  const patched = withTextLora(
    c.encoders.map((e) => e.encoder),
    clipPatches,
    s.clip,
    s.name,
  );
  return [{ ...m, unet }, { ...c, encoders: c.encoders.map((e, i) => ({ spec: e.spec, encoder: patched[i]! })) }];
}

/** CLIPMerge*: each of c1's encoders with c2's same encoder merged in (same family). */
export async function mergeClip(c1: ClipValue, c2: ClipValue, rule: MergeRule, tag: string): Promise<ClipValue> {
  const encoders = await Promise.all(
    c1.encoders.map(async (e) => ({ spec: e.spec, encoder: await mergeTextEncoder(e.encoder, encoderOf(c2, e.spec.name), rule, tag) })),
  );
  return { ...c1, encoders };
}

/** CheckpointSave: each encoder's weights (LoRAs merged in) under its checkpoint prefix. */
export function checkpointText(c: ClipValue): SavePart[] {
  return c.encoders.map((e) => {
    const overrides = e.encoder.overrides();
    return { weights: e.encoder.base.weights, ...(overrides ? { overrides } : {}), prefix: e.spec.prefix };
  });
}

function withArticle(label: string): string {
  return `${/^[AEFHILMNORSX]/.test(label) ? 'an' : 'a'} ${label}`;
}

/**
 * The standard refusal of a node that writes values into the label vector y: the CLIP's family must embed
 * every id in `ids`; the error names the node and the families that do.
 */
export function requireAdmIds(node: string, c: ClipValue, ids: readonly string[]): void {
  const has = (f: ModelFamily) => f.loadable && ids.every((id) => f.conditioning.adm?.ids.includes(id));
  const family = modelFamily(c.family);
  if (has(family)) return;
  const fits = MODEL_FAMILIES.filter(has).map((f) => withArticle(f.label));
  const need = fits.length ? fits.join(' or ') : 'a family whose y embeds ' + ids.join(', ');
  throw new Error(`${node} needs the CLIP of ${need} checkpoint (its y embeds ${ids.join(', ')}); this is the CLIP of ${withArticle(family.label)} checkpoint: use CLIPTextEncode for this model`);
}
