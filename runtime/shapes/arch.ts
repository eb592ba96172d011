/**
 * ResFlow Shapes: the architecture of the small SD1.x-family model ResFlow trains from scratch on the
 * shapes dataset, and the names it ships under.
 */
import type { Sd1Arch } from '../models/synthetic/tables.js';
import { shapesTokenizerFiles } from './tokenizer.js';

export const SHAPES_CHECKPOINT = 'resflow-shapes.safetensors';
export const SHAPES_TOKENIZER = 'resflow-shapes';
export const SHAPES_RESADAPTER = 'resflow-shapes-resadapter';
/** The base resolution: the UNet only ever sees 128×128 images (16×16 latents), as SD1.5 sees 512². */
export const SHAPES_BASE = 128;
export const SHAPES_HEADS = 2;
/**
 * The offset noise (per-image, per-channel constant, this standard deviation) the UNet was trained with; adapters
 * trained on it should use the same. Without it SD1's schedule lets the UNet read these flat-colour pictures'
 * colours off the initial noise instead of the prompt (docs/shapes-model.md).
 */
export const SHAPES_OFFSET_NOISE = 0.3;

export function shapesVocabSize(): number {
  return Math.max(...Object.values(shapesTokenizerFiles().vocab)) + 1;
}

/**
 * Four UNet levels (16², 8², 4², 2² latents) so the model keeps SD1.x's three down- and three upsampler
 * convs, which a ResAdapter's LoRA targets; cross-attention at the three deeper levels and the middle.
 * Widths are multiples of 32 because every GroupNorm has 32 groups.
 */
export function shapesArch(): Sd1Arch {
  return {
    unet: {
      inChannels: 4,
      outChannels: 4,
      modelChannels: 32,
      channelMult: [1, 2, 2, 2],
      numResBlocks: [1, 1, 1, 1],
      transformerDepth: [0, 1, 1, 1],
      transformerDepthOutput: [0, 0, 1, 1, 1, 1, 1, 1],
      transformerDepthMiddle: 1,
      contextDim: 64,
      useLinearInTransformer: false,
      admInChannels: null,
    },
    vae: { ch: 32, chMult: [1, 1, 2, 2], numResBlocks: 1, zChannels: 4 },
    clip: { hidden: 64, layers: 2, intermediate: 128, vocab: shapesVocabSize(), positions: 77 },
  };
}
