/**
 * What the core nodes do per model family, in one table: CheckpointLoaderSimple, CLIPTextEncode,
 * CLIPSetLastLayer, LoraLoader, the samplers, CLIP merges and CheckpointSave call `familyNodes(x.family)`
 * instead of branching. The family's facts (text encoders, prefixes, y layout, native size, training) come
 * from its descriptor in runtime/models/families/; this table binds them to the runtime code that acts.
 */
import type { ModelFolders } from '../../runtime/config/model-folders.js';
import { parseLora } from '../../runtime/adapters/lora-format.js';
import { modelFamily, type ModelFamily } from '../../runtime/models/families/registry.js';
import type { Vae } from '../../runtime/models/vae/index.js';
import { checkpointKeyShapes, loadLoraForModels } from '../../runtime/pipeline/adapter-loaders.js';
import type { SavePart } from '../../runtime/pipeline/checkpoint-save.js';
import { mergeClips, mergeSdxlText, type MergeRule } from '../../runtime/pipeline/model-merge.js';
import { PatchedClip, PatchedUnet, splitPatches } from '../../runtime/pipeline/patched-model.js';
import { patchedSdxlText, withSdxlTextLora } from '../../runtime/pipeline/patched-text.js';
import { loadSd1 } from '../../runtime/pipeline/sd1-loader.js';
import type { EpsModel } from '../../runtime/sampling/types.js';
import { encodeSd1Text } from './conditioning-nodes.js';
import { encodeRefinerText, loadRefinerCheckpoint, refinerSamplerModel } from './refiner-nodes.js';
import { encodeSdxlText, loadSdxlCheckpoint, sdxlSamplerModel } from './sdxl-nodes.js';
import type { ClipValue, ConditioningValue, ModelValue, RefinerClipValue, Sd1ClipValue, SdxlClipValue } from './types.js';

export type LoadedFamilyId = ModelValue['family'];

export interface LoraStrengths {
  name: string;
  model: number;
  clip: number;
}

export interface FamilyNodes {
  family: ModelFamily;
  /** CheckpointLoaderSimple's MODEL, CLIP, VAE. */
  load(path: string, folders: ModelFolders): Promise<[ModelValue, ClipValue, Vae]>;
  /** CLIPTextEncode: the prompt's context (+ pooled output where the family has one). */
  encodeText(clip: ClipValue, text: string): Promise<ConditioningValue>;
  /** CLIPSetLastLayer(-k). */
  setLastLayer(clip: ClipValue, k: number): ClipValue;
  /** LoraLoader: UNet keys at strength.model, this family's text-encoder keys at strength.clip. */
  addLora(model: ModelValue, clip: ClipValue, path: string, strength: LoraStrengths): [ModelValue, ClipValue];
  /** The UNet as the sampler calls it, with whatever extra inputs (y) the family's UNet takes. */
  samplerModel(model: ModelValue, positive: ConditioningValue, negative: ConditioningValue, latentShape: readonly number[], seed?: number | bigint): EpsModel;
  /** CLIPMerge*: clip1's encoders with clip2's merged in (both of this family). */
  mergeClip(c1: ClipValue, c2: ClipValue, rule: MergeRule, tag: string): Promise<ClipValue>;
  /** CheckpointSave: the text-encoder parts of the saved file. */
  checkpointText(clip: ClipValue): SavePart[];
}

function expect<F extends ClipValue['family']>(c: ClipValue, family: F): Extract<ClipValue, { family: F }> {
  if (c.family !== family) throw new Error(`expected the CLIP of ${modelFamily(family).label} checkpoint, got ${modelFamily(c.family).label}`);
  return c as Extract<ClipValue, { family: F }>;
}

const SD1 = modelFamily('sd1');
const SDXL = modelFamily('sdxl');
const REFINER = modelFamily('sdxl-refiner');

const sd1: FamilyNodes = {
  family: SD1,
  async load(path, folders) {
    const m = await loadSd1(path, folders);
    const model: ModelValue = { family: 'sd1', unet: PatchedUnet.of(m.unet), sampling: m.sampling };
    const clip: Sd1ClipValue = { family: 'sd1', clip: PatchedClip.of(m.clip), tokenizer: m.tokenizer };
    return [model, clip, m.vae];
  },
  encodeText: (c, text) => encodeSd1Text(expect(c, 'sd1'), text),
  setLastLayer(c, k) {
    const s = expect(c, 'sd1');
    return { ...s, clip: s.clip.withClipSkip(k) };
  },
  addLora(m, c, path, s) {
    const clip = expect(c, 'sd1');
    const r = loadLoraForModels(m.unet, clip.clip, path, s.model, s.clip);
    return [{ ...m, unet: r.model! }, { ...clip, clip: r.clip! }];
  },
  samplerModel(model, _positive, _negative, latentShape, seed) {
    // The seed goes along for patches that draw from torch's global generator after prepare_noise (HyperTile).
    const latentNumel = latentShape.reduce((a, b) => a * b, 1);
    return model.unet.epsModel(seed === undefined ? { latentNumel } : { seed, latentNumel });
  },
  async mergeClip(c1, c2, rule, tag) {
    const a = expect(c1, 'sd1');
    return { ...a, clip: await mergeClips(a.clip, expect(c2, 'sd1').clip, rule, tag) };
  },
  checkpointText(c) {
    const s = expect(c, 'sd1');
    return [{ weights: s.clip.base.weights, overrides: s.clip.overrides(), prefix: SD1.textEncoders[0]!.prefix }];
  },
};

const sdxl: FamilyNodes = {
  family: SDXL,
  load: (path, folders) => loadSdxlCheckpoint(path, folders),
  encodeText: (c, text) => encodeSdxlText(expect(c, 'sdxl'), text),
  // Both encoders stop at the layer; -1 drops SDXL's penultimate default, as in ComfyUI.
  setLastLayer: (c, k) => ({ ...expect(c, 'sdxl'), clipSkip: k }),
  addLora(m, c, path, s) {
    const clip = expect(c, 'sdxl');
    // te1/text_encoder patches go to CLIP-L, te2/text_encoder_2 to bigG, both at strength_clip.
    const parsed = parseLora(path, checkpointKeyShapes(clip.text.clipL.weights.file));
    const r = loadLoraForModels(m.unet, undefined, parsed, s.model, 0);
    const clipPatches = splitPatches(parsed.patches).clip;
    if (!clipPatches.length || s.clip === 0) return [{ ...m, unet: r.model! }, clip];
    const patched = withSdxlTextLora(clip.patched ?? patchedSdxlText(clip.text), clipPatches, s.clip, s.name);
    return [{ ...m, unet: r.model! }, { ...clip, patched }];
  },
  samplerModel: (model, positive, negative, latentShape, seed) => sdxlSamplerModel(model, positive, negative, latentShape, seed),
  async mergeClip(c1, c2, rule, tag) {
    const a = expect(c1, 'sdxl');
    return { ...a, text: await mergeSdxlText(a.text, expect(c2, 'sdxl').text, rule, tag) };
  },
  checkpointText(c) {
    const s: SdxlClipValue = expect(c, 'sdxl');
    const [l, g] = SDXL.textEncoders;
    return [
      { weights: s.text.clipL.weights, prefix: l!.prefix },
      { weights: s.text.clipG.weights, prefix: g!.prefix },
    ];
  },
};

const refiner: FamilyNodes = {
  family: REFINER,
  load: (path, folders) => loadRefinerCheckpoint(path, folders),
  encodeText: (c, text) => encodeRefinerText(expect(c, 'sdxl-refiner'), text),
  setLastLayer: (c, k) => ({ ...expect(c, 'sdxl-refiner'), clipSkip: k }),
  addLora(m, c, path, s) {
    const clip: RefinerClipValue = expect(c, 'sdxl-refiner');
    // With bigG alone, ComfyUI maps lora_te_* / text_encoder.* to it (our key map's te1 slot on the refiner).
    const parsed = parseLora(path, checkpointKeyShapes(clip.clipG.base.weights.file));
    const r = loadLoraForModels(m.unet, undefined, parsed, s.model, 0);
    const clipPatches = splitPatches(parsed.patches).clip;
    if (!clipPatches.length || s.clip === 0) return [{ ...m, unet: r.model! }, clip];
    const clipG = clip.clipG.withAdapter({ id: s.name, label: s.name, patches: clipPatches, strength: s.clip });
    return [{ ...m, unet: r.model! }, { ...clip, clipG }];
  },
  samplerModel: (model, positive, negative, latentShape) => refinerSamplerModel(model, positive, negative, latentShape),
  mergeClip() {
    throw new Error('merging SDXL refiner text encoders is not supported yet');
  },
  checkpointText() {
    throw new Error('saving SDXL refiner checkpoints is not supported yet');
  },
};

const FAMILY_NODES: Record<LoadedFamilyId, FamilyNodes> = { sd1, sdxl, 'sdxl-refiner': refiner };

export function familyNodes(id: LoadedFamilyId): FamilyNodes {
  return FAMILY_NODES[id];
}
