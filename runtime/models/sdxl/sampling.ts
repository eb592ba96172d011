import type { TensorData } from '../../graph/session.js';
import { unetEpsModel, type EpsModelOptions } from '../../pipeline/eps-model.js';
import { repeatToBatch } from '../../sampling/cfg.js';
import { ModelSampling, SDXL_LATENT_FORMAT } from '../../sampling/model-sampling.js';
import type { CondBatch, Conditioning, EpsModel } from '../../sampling/types.js';
import type { UnetModel } from '../unet/model.js';
import { conditioningAdm, type SdxlTextConditioning } from './conditioning.js';

/** A sampler conditioning that also carries what SDXL's y is built from. */
export interface SdxlConditioning extends Conditioning, Pick<SdxlTextConditioning, 'pooled' | 'pooledShape' | 'sizes'> {}

/** A text encoding as a sampler conditioning (no ControlNets). */
export function toSdxlConditioning(enc: SdxlTextConditioning): SdxlConditioning {
  const c: SdxlConditioning = { context: enc.context, contextShape: enc.contextShape, pooled: enc.pooled, pooledShape: enc.pooledShape };
  if (enc.sizes) c.sizes = enc.sizes;
  return c;
}

/** SDXL base: SD1's discrete eps schedule, SDXL's latent scale. */
export function sdxlModelSampling(): ModelSampling {
  return new ModelSampling({ latentFormat: SDXL_LATENT_FORMAT });
}

/**
 * y for each model call: the sampler batches [uncond, cond] chunks (CondBatch.condOrUncond), each chunk the
 * latent batch; each chunk gets its own conditioning's y, repeated to the chunk's batch. Sizes missing from
 * a conditioning come from the latent, as ComfyUI's encode_model_conds does, so y is fixed per run.
 */
export function sdxlAdmProvider(
  positive: SdxlConditioning,
  negative: SdxlConditioning,
  latentShape: readonly number[],
  admInChannels: number,
): (cond: CondBatch) => TensorData {
  const ys = { cond: conditioningAdm(positive, latentShape, admInChannels), uncond: conditioningAdm(negative, latentShape, admInChannels) };
  // Combined conditionings: each entry carries its own pooled output (and sizes), hence its own y.
  const perEntry = new WeakMap<object, Float32Array>();
  const entryY = (e: Conditioning | undefined, kind: 'cond' | 'uncond'): Float32Array => {
    const s = e as SdxlConditioning | undefined;
    if (!s?.pooled || !s.pooledShape) return ys[kind];
    let y = perEntry.get(s);
    if (!y) perEntry.set(s, (y = conditioningAdm(s, latentShape, admInChannels)));
    return y;
  };
  return (cond) => {
    const chunks = cond.condOrUncond.length;
    const perChunk = cond.contextShape[0] / chunks;
    const out = new Float32Array(cond.contextShape[0] * admInChannels);
    cond.condOrUncond.forEach((kind, i) => {
      const y = entryY(cond.entries?.[i], kind);
      out.set(repeatToBatch(y, y.length / admInChannels, perChunk), i * perChunk * admInChannels);
    });
    return { data: out, dims: [cond.contextShape[0], admInChannels] };
  };
}

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
