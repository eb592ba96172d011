import type { SdxlSizes } from '../../runtime/models/sdxl/adm.js';
import type { SdxlTextEncoder } from '../../runtime/models/sdxl/conditioning.js';
import type { CfgFunction } from '../../runtime/sampling/guidance.js';
import type { ModelSampling } from '../../runtime/sampling/model-sampling.js';
import type { Conditioning, EpsModel, Latent } from '../../runtime/sampling/types.js';
import type { PatchedClip, PatchedUnet } from '../../runtime/pipeline/patched-model.js';
import type { PatchedOpenClip, PatchedSdxlText } from '../../runtime/pipeline/patched-text.js';
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

/** CLIP of an SD1.x checkpoint: the text encoder handle (adapters, clip skip) and its tokenizer. */
export interface Sd1ClipValue {
  family: 'sd1';
  clip: PatchedClip;
  tokenizer: ClipTokenizer;
  /** The embeddings folders `embedding:name` is looked up in (set by the checkpoint loader); absent = plain text. */
  embeddings?: EmbeddingLibrary;
}

/** CLIP of an SDXL checkpoint: both encoders (CLIP-L + bigG), one tokenizer, the layer both stop at. */
export interface SdxlClipValue {
  family: 'sdxl';
  text: SdxlTextEncoder;
  tokenizer: ClipTokenizer;
  /** The embeddings folders `embedding:name` is looked up in (set by the checkpoint loader); absent = plain text. */
  embeddings?: EmbeddingLibrary;
  /** k of CLIPSetLastLayer(-k); SDXL's default is 2, the penultimate layer. */
  clipSkip: number;
  /** Both encoders with the text-encoder LoRAs applied so far (LoraLoader); absent = unpatched. */
  patched?: PatchedSdxlText;
}

/** CLIP of an SDXL refiner: OpenCLIP bigG alone (SDXL's tokenizer, only the g list is encoded). */
export interface RefinerClipValue {
  family: 'sdxl-refiner';
  clipG: PatchedOpenClip;
  tokenizer: ClipTokenizer;
  /** The embeddings folders `embedding:name` is looked up in (set by the checkpoint loader); absent = plain text. */
  embeddings?: EmbeddingLibrary;
  clipSkip: number;
}

export type ClipValue = Sd1ClipValue | SdxlClipValue | RefinerClipValue;

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
