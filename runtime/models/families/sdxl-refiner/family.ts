import { SDXL_LATENT_FORMAT } from '../../../sampling/model-sampling.js';
import { SIZE_EMBED_DIM } from '../../sdxl/adm.js';
import { resAdapterTargets } from '../../unet/unet.js';
import type { ModelFamily } from '../types.js';
import { REFINER_ADM_IDS, REFINER_PREFIXES } from './index.js';

/** SDXL refiner: bigG alone at `conditioner.embedders.0.model`, y = pooled + height, width, crops, aesthetic score. */
export const SDXL_REFINER_FAMILY: ModelFamily = {
  id: 'sdxl-refiner',
  name: 'SDXL refiner',
  label: 'SDXL refiner',
  loadable: true,
  matches: (has) => has(`${REFINER_PREFIXES.clipG}ln_final.weight`) && !has('conditioner.embedders.1.model.ln_final.weight'),
  prefixes: { unet: REFINER_PREFIXES.unet, vae: REFINER_PREFIXES.vae },
  // With bigG alone, ComfyUI maps the one-encoder LoRA prefixes to it.
  textEncoders: [{ name: 'clip_g', layout: 'openclip', prefix: REFINER_PREFIXES.clipG, padToken: 0, loraPrefixes: ['lora_te_', 'lora_te1_', 'text_encoder.'] }],
  conditioning: { pooled: true, pooledFrom: 'clip_g', adm: { ids: REFINER_ADM_IDS, embedDim: SIZE_EMBED_DIM }, defaultClipSkip: 2 },
  latentFormat: SDXL_LATENT_FORMAT,
  prediction: 'eps',
  nativeResolution: 1024,
  controlNet: { supported: false, takesY: true },
  // No ResAdapter is released for the refiner, so there is no key set to match when training one.
  resAdapter: { targets: resAdapterTargets, releasedMarker: null },
  training: { supported: false },
};
