import type { Latent } from '../../runtime/sampling/types.js';

/** ComfyUI's LATENT: a dict with `samples` (unscaled VAE latents) and optional extras. */
export interface LatentValue {
  samples: Latent;
  /** Per-item index for batches split from a larger one (ComfyUI's batch_index). */
  batchIndex?: number[];
}
