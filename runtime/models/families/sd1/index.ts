import { SD15_LATENT_FORMAT } from '../../../sampling/model-sampling.js';
import { resAdapterTargets } from '../../unet/unet.js';
import type { ModelFamily } from '../types.js';

/** Stable Diffusion 1.x: CLIP-L alone (last layer, final LN), no label vector, latent scale 0.18215. */
export const SD1_FAMILY: ModelFamily = {
  id: 'sd1',
  name: 'Stable Diffusion 1.x',
  label: 'SD1.x',
  loadable: true,
  // The fallback for an LDM UNet with no other family's text encoder (asked last).
  matches: (has) => has('model.diffusion_model.input_blocks.0.0.weight'),
  prefixes: { unet: 'model.diffusion_model.', vae: 'first_stage_model.' },
  textEncoders: [
    { name: 'clip_l', layout: 'clip', prefix: 'cond_stage_model.transformer.text_model.', padToken: 'end', loraPrefixes: ['lora_te_', 'text_encoder.'] },
  ],
  conditioning: { pooled: false, adm: null, defaultClipSkip: 1 },
  latentFormat: SD15_LATENT_FORMAT,
  prediction: 'eps',
  nativeResolution: 512,
  controlNet: { supported: true, takesY: false, diffLayout: true },
  resAdapter: { targets: resAdapterTargets, releasedMarker: 'sd1.5' },
  training: { supported: true },
};
