import type { SdxlSizes } from '../../runtime/models/sdxl/adm.js';
import type { TextEncoderSpec } from '../../runtime/models/families/types.js';
import type { CfgFunction } from '../../runtime/sampling/guidance.js';
import type { ModelSampling } from '../../runtime/sampling/model-sampling.js';
import type { Conditioning, EpsModel, Latent } from '../../runtime/sampling/types.js';
import type { PatchedUnet } from '../../runtime/pipeline/patched-model.js';
import type { PatchedTextEncoder } from '../../runtime/pipeline/text-encoders.js';
import type { RefinerAdmValues } from '../../runtime/models/families/sdxl-refiner/index.js';
import type { ClipTokenizer } from '../../runtime/text/index.js';
import type { EmbeddingLibrary } from '../../runtime/text/embeddings.js';

/**
 * The values that travel along typed links. Nodes are thin: these are handles onto runtime objects, and
 * every "modification" (adapters, clip skip, ControlNets) makes a new value rather than changing an input.
 */

/** ComfyUI's LATENT: a dict with `samples` (unscaled VAE latents) and optional extras. */
export interface LatentValue {
  samples: Latent;
  /** Per-item index for batches split from a larger one (ComfyUI's batch_index). */
  batchIndex?: number[];
  /** Only where this is 1 does the sampler change the latent ([B, 1, H, W], any resolution; SetLatentNoiseMask). */
  noiseMask?: { data: Float32Array; shape: [number, number, number, number] };
}

/**
 * MODEL: a UNet with its adapter stack and the sampling schedule it was trained with. The family decides
 * how the sampler conditions it (SDXL adds the y vector).
 */
export interface ModelValue {
  family: 'sd1' | 'sdxl' | 'sdxl-refiner';
  unet: PatchedUnet;
  /** Sampler-side patches (e.g. MultiDiffusion), applied in order around the UNet's EpsModel at sampling time. */
  epsWrappers?: readonly EpsModelWrapper[];
  sampling: ModelSampling;
  /** A CFG replacement patched onto the model (RescaleCFG), ComfyUI's sampler_cfg_function. */
  cfgFunction?: CfgFunction;
}

/** One text encoder of a CLIP: what the family says it is, and its handle with the LoRAs applied so far. */
export interface ClipEncoderValue {
  spec: TextEncoderSpec;
  encoder: PatchedTextEncoder;
}

/**
 * CLIP, the same shape for every family: the family it belongs to, its text encoders in the family's order
 * (SD1.x: CLIP-L; SDXL: CLIP-L + bigG; refiner: bigG), one tokenizer, and the layer they all stop at.
 * LoRA, CLIPSetLastLayer, merges and embeddings act on it alike; the family's encodeText combines the encoders.
 */
export interface ClipValue {
  family: ModelValue['family'];
  encoders: readonly ClipEncoderValue[];
  tokenizer: ClipTokenizer;
  /** The embeddings folders `embedding:name` is looked up in (set by the checkpoint loader); absent = plain text. */
  embeddings?: EmbeddingLibrary;
  /** k of CLIPSetLastLayer(-k): 1 = last layer, 2 = penultimate (the family's default at load). */
  clipSkip: number;
}

/** CONDITIONING: the sampler's conditioning plus the pooled text embedding. */
export interface ConditioningValue extends Conditioning {
  pooled?: Float32Array;
  /** [1, P]; set by SDXL encoders, whose pooled output heads the y vector. */
  pooledShape?: [number, number];
  /** CLIPTextEncodeSDXL's size ids; absent ones are derived from the latent at sampling time. */
  sizes?: Partial<SdxlSizes>;
  /** CLIPTextEncodeSDXLRefiner's values; absent ones come from the latent and the prompt's role at sampling. */
  refiner?: Partial<RefinerAdmValues>;
}

/** A sampler-side model patch: wraps the EpsModel the sampler calls (MultiDiffusion). */
export type EpsModelWrapper = (inner: EpsModel) => EpsModel;
