import type { UnetModel } from '../models/unet/model.js';
import { sdxlAdmProvider, type SdxlConditioning } from '../models/sdxl/sampling.js';
import type { EpsModel } from '../sampling/types.js';
import { unetEpsModel, type EpsModelOptions } from './eps-model.js';

/** The sampler's EpsModel for an SDXL UNet and one positive/negative pair. */
export function sdxlEpsModel(
  unet: UnetModel,
  positive: SdxlConditioning,
  negative: SdxlConditioning,
  latentShape: readonly number[],
  opts: Omit<EpsModelOptions, 'y'> = {},
): EpsModel {
  const adm = unet.config.admInChannels;
  if (!adm) throw new Error('sdxlEpsModel: this UNet has no label embedding (not an SDXL UNet)');
  return unetEpsModel(unet, { ...opts, y: sdxlAdmProvider(positive, negative, latentShape, adm) });
}
