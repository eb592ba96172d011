/**
 * Memory a UNet run is about to need, estimated from the graph itself rather than a constant: the skip
 * activations its input blocks keep alive until the output blocks consume them (from this config's block
 * layout, at this latent size and batch), plus the F32 weights when its session is not loaded yet.
 */
import type { UnetModel } from './model.js';
import { skipChannels } from './unet.js';

/**
 * Live activation bytes at the peak per byte of skip tensors, measured on SD1.5 with onnxruntime's CPU
 * provider (768², batch 2 with CFG: ~1 GB above the weights, for 120 MB of skips).
 */
const PEAK_PER_SKIP_BYTE = 8;

export interface UnetRunEstimate {
  activationBytes: number;
  /** F32 weights still to be loaded (0 when the session is already open). */
  weightBytes: number;
  totalBytes: number;
}

/** Bytes of the skip activations for one sample of an h×w latent. */
export function skipBytes(unet: UnetModel, h: number, w: number): number {
  let hh = h;
  let ww = w;
  let n = 0;
  unet.config.inputBlocks.forEach((blk, i) => {
    if (blk.kind === 'down') (hh = Math.ceil(hh / 2)), (ww = Math.ceil(ww / 2));
    n += skipChannels(unet.config, i) * hh * ww;
  });
  return 4 * n;
}

export function estimateUnetRun(unet: UnetModel, latentShape: readonly number[], batch: number): UnetRunEstimate {
  const [, , h = 0, w = 0] = latentShape;
  const activationBytes = PEAK_PER_SKIP_BYTE * batch * skipBytes(unet, h, w);
  let weightBytes = 0;
  if (!unet.sessionLoaded()) {
    const file = unet.weights.file;
    for (const k of file.keys()) if (k.startsWith(unet.weights.prefix)) weightBytes += 4 * file.info(k).shape.reduce((a, b) => a * b, 1);
  }
  return { activationBytes, weightBytes, totalBytes: activationBytes + weightBytes };
}
