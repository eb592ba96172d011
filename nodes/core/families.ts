/**
 * What the core nodes do per model family, in one table: CheckpointLoaderSimple, CLIPTextEncode and the
 * samplers call `familyNodes(x.family)` instead of branching. The family's facts (text encoders, prefixes,
 * y layout, native size, training) come from its descriptor in runtime/models/families/; this table binds
 * them to the runtime code that acts. What every CLIP does alike (LoRA, layer, merge, save) is clip-value.ts.
 */
import type { ModelFolders } from '../../runtime/config/model-folders.js';
import { modelFamily, type ModelFamily } from '../../runtime/models/families/registry.js';
import type { Vae } from '../../runtime/models/vae/index.js';
import { PatchedClip, PatchedUnet } from '../../runtime/pipeline/patched-model.js';
import { loadSd1 } from '../../runtime/pipeline/sd1-loader.js';
import type { EpsModel } from '../../runtime/sampling/types.js';
import { clipValueOf } from './clip-value.js';
import { encodeSd1Text } from './conditioning-nodes.js';
import { encodeRefinerText, loadRefinerCheckpoint, refinerSamplerModel } from './refiner-nodes.js';
import { encodeSdxlText, loadSdxlCheckpoint, sdxlSamplerModel } from './sdxl-nodes.js';
import type { ClipValue, ConditioningValue, ModelValue } from './types.js';

export type LoadedFamilyId = ModelValue['family'];
export type { LoraStrengths } from './clip-value.js';

export interface FamilyNodes {
  family: ModelFamily;
  /** CheckpointLoaderSimple's MODEL, CLIP, VAE. */
  load(path: string, folders: ModelFolders): Promise<[ModelValue, ClipValue, Vae]>;
  /** CLIPTextEncode: the prompt's context (+ pooled output where the family has one). */
  encodeText(clip: ClipValue, text: string): Promise<ConditioningValue>;
  /** The UNet as the sampler calls it, with whatever extra inputs (y) the family's UNet takes. */
  samplerModel(model: ModelValue, positive: ConditioningValue, negative: ConditioningValue, latentShape: readonly number[], seed?: number | bigint): EpsModel;
}

const SD1 = modelFamily('sd1');

const sd1: FamilyNodes = {
  family: SD1,
  async load(path, folders) {
    const m = await loadSd1(path, folders);
    const model: ModelValue = { family: 'sd1', unet: PatchedUnet.of(m.unet), sampling: m.sampling };
    return [model, clipValueOf(SD1, [PatchedClip.of(m.clip)], m.tokenizer), m.vae];
  },
  encodeText: (c, text) => encodeSd1Text(c, text),
  samplerModel(model, _positive, _negative, latentShape, seed) {
    // The seed goes along for patches that draw from torch's global generator after prepare_noise (HyperTile).
    const latentNumel = latentShape.reduce((a, b) => a * b, 1);
    return model.unet.epsModel(seed === undefined ? { latentNumel } : { seed, latentNumel });
  },
};

const sdxl: FamilyNodes = {
  family: modelFamily('sdxl'),
  load: (path, folders) => loadSdxlCheckpoint(path, folders),
  encodeText: (c, text) => encodeSdxlText(c, text),
  samplerModel: (model, positive, negative, latentShape, seed) => sdxlSamplerModel(model, positive, negative, latentShape, seed),
};

const refiner: FamilyNodes = {
  family: modelFamily('sdxl-refiner'),
  load: (path, folders) => loadRefinerCheckpoint(path, folders),
  encodeText: (c, text) => encodeRefinerText(c, text),
  samplerModel: (model, positive, negative, latentShape) => refinerSamplerModel(model, positive, negative, latentShape),
};

const FAMILY_NODES = new Map<string, FamilyNodes>([sd1, sdxl, refiner].map((f) => [f.family.id, f]));

/**
 * Binds a family's loader, text encoding and sampler model for the nodes (its descriptor goes to
 * registerModelFamily); returns the call that removes the binding again.
 */
export function registerFamilyNodes(nodes: FamilyNodes): () => void {
  const id = nodes.family.id;
  if (FAMILY_NODES.has(id)) throw new Error(`model family "${id}" has node bindings already`);
  FAMILY_NODES.set(id, nodes);
  return () => {
    if (FAMILY_NODES.get(id) === nodes) FAMILY_NODES.delete(id);
  };
}

export function familyNodes(id: LoadedFamilyId): FamilyNodes {
  const nodes = FAMILY_NODES.get(id);
  if (!nodes) throw new Error(`no nodes are bound to model family "${id}"`);
  return nodes;
}
