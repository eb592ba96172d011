import { SDXL_LATENT_FORMAT } from '../../../sampling/model-sampling.js';
import { sdxlAdm, SIZE_EMBED_DIM, SIZE_IDS, type SdxlSizes } from '../../sdxl/adm.js';
import { SDXL_PREFIXES } from '../../sdxl/checkpoint.js';
import { resAdapterTargets } from '../../unet/unet.js';
import type { ModelFamily } from '../types.js';

/**
 * SDXL base: CLIP-L and OpenCLIP bigG (both at the penultimate layer, contexts concatenated), bigG's pooled
 * output + 6 size ids in y, latent scale 0.13025. The code behind it lives in ../../sdxl/.
 */
export const SDXL_FAMILY: ModelFamily = {
  id: 'sdxl',
  name: 'SDXL',
  label: 'SDXL',
  loadable: true,
  matches: (has) => has(`${SDXL_PREFIXES.clipG}ln_final.weight`) || has(`${SDXL_PREFIXES.clipL}final_layer_norm.weight`),
  prefixes: { unet: SDXL_PREFIXES.unet, vae: SDXL_PREFIXES.vae },
  textEncoders: [
    { name: 'clip_l', layout: 'clip', prefix: SDXL_PREFIXES.clipL, padToken: 'end', loraPrefixes: ['lora_te1_', 'text_encoder.'] },
    { name: 'clip_g', layout: 'openclip', prefix: SDXL_PREFIXES.clipG, padToken: 0, loraPrefixes: ['lora_te2_', 'text_encoder_2.'] },
  ],
  conditioning: { pooled: true, pooledFrom: 'clip_g', adm: { ids: SIZE_IDS, embedDim: SIZE_EMBED_DIM }, defaultClipSkip: 2 },
  latentFormat: SDXL_LATENT_FORMAT,
  prediction: 'eps',
  nativeResolution: 1024,
  controlNet: { supported: true, takesY: true },
  // ModelMergeSDXL's blocks: SDXL's 9 input, 3 middle and 9 output blocks between the embeddings and `out`.
  mergeBlocks: [
    'time_embed.',
    'label_emb.',
    ...Array.from({ length: 9 }, (_, i) => `input_blocks.${i}.`),
    ...Array.from({ length: 3 }, (_, i) => `middle_block.${i}.`),
    ...Array.from({ length: 9 }, (_, i) => `output_blocks.${i}.`),
    'out.',
  ],
  resAdapter: { targets: resAdapterTargets, releasedMarker: 'sdxl' },
  training: {
    supported: true,
    // The bucket's size as original and target size, no crop: what a plain CLIPTextEncode gives at that size.
    labelVector: (pooled, { width, height }, adm) => {
      const sizes: SdxlSizes = { width, height, cropW: 0, cropH: 0, targetWidth: width, targetHeight: height };
      return sdxlAdm(pooled, pooled.length, sizes, adm);
    },
  },
};
