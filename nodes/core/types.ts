import type { ModelSampling } from '../../runtime/sampling/model-sampling.js';
import type { Conditioning, Latent } from '../../runtime/sampling/types.js';
import type { PatchedClip, PatchedUnet } from '../../runtime/pipeline/patched-model.js';
import type { ClipTokenizer } from '../../runtime/text/index.js';

/**
 * The values that travel along typed links. Nodes are thin: these are handles onto runtime objects, and
 * every "modification" (adapters, clip skip, ControlNets) makes a new value rather than changing an input.
 */

/** ComfyUI's LATENT: a dict with `samples` (unscaled VAE latents) and optional extras. */
export interface LatentValue {
  samples: Latent;
  /** Per-item index for batches split from a larger one (ComfyUI's batch_index). */
  batchIndex?: number[];
}

/** MODEL: a UNet with its adapter stack and the sampling schedule it was trained with. */
export interface ModelValue {
  family: 'sd1' | 'sdxl';
  unet: PatchedUnet;
  sampling: ModelSampling;
}

/** CLIP: the text encoder handle (adapters, clip skip) and its tokenizer. */
export interface ClipValue {
  family: 'sd1' | 'sdxl';
  clip: PatchedClip;
  tokenizer: ClipTokenizer;
}

/** CONDITIONING: the sampler's conditioning plus the pooled text embedding. */
export interface ConditioningValue extends Conditioning {
  pooled?: Float32Array;
}
