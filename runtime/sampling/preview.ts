/**
 * Cheap progress previews: ComfyUI's Latent2RGB previewer, a per-pixel linear map of the latent
 * channels to RGB, for the first batch item at latent resolution.
 */
import { SD15_LATENT_FORMAT, type LatentFormat } from './model-sampling.js';
import type { Latent } from './types.js';

export interface PreviewImage {
  width: number;
  height: number;
  /** Packed RGB, row-major, 3 bytes per pixel. */
  rgb: Uint8Array;
}

/** Maps a model-space latent (e.g. the step's `denoised`) to an RGB image. */
export function latentPreview(latent: Latent, format: LatentFormat = SD15_LATENT_FORMAT): PreviewImage {
  const [, channels, height, width] = latent.shape;
  const factors = format.rgbFactors;
  if (factors.length !== channels) {
    throw new RangeError(`preview factors cover ${factors.length} latent channels, the latent has ${channels}`);
  }
  const bias = format.rgbBias ?? [0, 0, 0];
  const plane = height * width;
  const rgb = new Uint8Array(plane * 3);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      let v = bias[c]!;
      for (let k = 0; k < channels; k++) v += latent.data[k * plane + p]! * factors[k]![c]!;
      // (v + 1) / 2 clamped to [0, 1], then truncated to a byte as torch's uint8 cast does.
      const unit = Math.min(Math.max((v + 1) / 2, 0), 1);
      rgb[p * 3 + c] = Math.trunc(unit * 255);
    }
  }
  return { width, height, rgb };
}
