import { SD15_LATENT_FORMAT } from '../../../sampling/model-sampling.js';
import { resAdapterTargets } from '../../unet/unet.js';
import type { ModelFamily } from '../types.js';

/**
 * Stable Diffusion 2.x: OpenCLIP ViT-H alone (penultimate layer), 1024-wide context, no label vector; v- or
 * eps-prediction depending on the checkpoint. Described and detected so files are named correctly; ResFlow
 * does not load it yet (`loadable: false`).
 */
export const SD2_FAMILY: ModelFamily = {
  id: 'sd2',
  name: 'Stable Diffusion 2.x',
  label: 'SD2.x',
  loadable: false,
  matches: (has) => has('cond_stage_model.model.ln_final.weight') || has('cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight'),
  prefixes: { unet: 'model.diffusion_model.', vae: 'first_stage_model.' },
  textEncoders: [{ name: 'clip_h', layout: 'openclip', prefix: 'cond_stage_model.model.', padToken: 0, loraPrefixes: ['lora_te_', 'text_encoder.'] }],
  conditioning: { pooled: false, adm: null, defaultClipSkip: 2 },
  latentFormat: SD15_LATENT_FORMAT,
  prediction: 'eps-or-v',
  nativeResolution: 768,
  controlNet: { supported: false, takesY: false },
  resAdapter: { targets: resAdapterTargets, releasedMarker: null },
  training: { supported: false },
};
