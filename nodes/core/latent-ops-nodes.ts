import { commonUpscale, LATENT_UPSCALE_METHODS, scaleByTarget, type UpscaleMethodName } from '../../runtime/image/upscale.js';
import { latentBlend, latentComposite, latentCompositeMasked, latentCrop, latentFromBatch, prepareNoise, repeatLatentBatch, type LatentParts } from '../../runtime/latent/ops.js';
import type { SampleOptions } from '../../runtime/sampling/sample.js';
import type { MaskTensor, Shape4 } from '../../runtime/sampling/types.js';
import type { NodeSpec } from '../spec.js';
import { checkTensorFits, MAX_RESOLUTION } from './latent-nodes.js';
import type { LatentValue, ModelValue } from './types.js';

/** ComfyUI's latent batch / compositing nodes and SetLatentNoiseMask; the math is in runtime/latent/ops.ts. */

const LATENT = { type: 'LATENT' } as const;
const PIXELS = (def = 0) => ({ type: 'INT', default: def, min: 0, max: MAX_RESOLUTION, step: 8 }) as const;

function parts(l: LatentValue): LatentParts {
  const p: LatentParts = { samples: l.samples };
  if (l.noiseMask) p.noiseMask = l.noiseMask;
  if (l.batchIndex) p.batchIndex = l.batchIndex;
  return p;
}

function fromParts(base: LatentValue, p: LatentParts): LatentValue {
  const out: LatentValue = { ...base, samples: p.samples };
  if (p.noiseMask) out.noiseMask = p.noiseMask;
  else delete out.noiseMask;
  if (p.batchIndex) out.batchIndex = p.batchIndex;
  else delete out.batchIndex;
  return out;
}

/**
 * What a LATENT adds to a sampler run (common_ksampler): the noise drawn per batch_index, the noise mask,
 * and an inpainting / InstructPix2Pix model's extra input channels.
 */
export function latentSampleOptions(model: ModelValue, latent: LatentValue, seed: number | bigint): Partial<SampleOptions> {
  const out: Partial<SampleOptions> = {};
  if (latent.batchIndex) out.noise = prepareNoise(seed, latent.samples.shape, latent.batchIndex);
  if (latent.noiseMask) out.noiseMask = latent.noiseMask;
  const extra = model.unet.base.config.inChannels - latent.samples.shape[1];
  if (extra > 0) out.concatChannels = extra;
  return out;
}

/** The same for SamplerCustom(Advanced): the noise source draws per batch_index itself. */
export function latentSampleOptionsCustom(model: ModelValue, latent: LatentValue): { noiseMask?: NonNullable<LatentValue['noiseMask']>; batchIndex?: number[]; concatChannels?: number } {
  const out: { noiseMask?: NonNullable<LatentValue['noiseMask']>; batchIndex?: number[]; concatChannels?: number } = {};
  if (latent.batchIndex) out.batchIndex = latent.batchIndex;
  if (latent.noiseMask) out.noiseMask = latent.noiseMask;
  const extra = model.unet.base.config.inChannels - latent.samples.shape[1];
  if (extra > 0) out.concatChannels = extra;
  return out;
}

export function latentOpsNodes(): NodeSpec[] {
  return [
    {
      name: 'LatentUpscaleBy',
      displayName: 'Upscale Latent By',
      category: 'latent',
      inputs: { required: { samples: LATENT, upscale_method: { type: 'COMBO', options: LATENT_UPSCALE_METHODS }, scale_by: { type: 'FLOAT', default: 1.5, min: 0.01, max: 8, step: 0.01 } } },
      outputs: [{ type: 'LATENT' }],
      execute({ samples, upscale_method, scale_by }) {
        const l = samples as LatentValue;
        const [B, C, H, W] = l.samples.shape;
        const t = scaleByTarget(W, H, Number(scale_by));
        checkTensorFits(`an upscaled ${t.width * 8}x${t.height * 8} latent batch of ${B}`, B * C * t.width * t.height, 'LatentUpscaleBy');
        return [{ ...l, samples: commonUpscale(l.samples, t.width, t.height, upscale_method as UpscaleMethodName, 'disabled') }];
      },
    },
    {
      name: 'LatentComposite',
      displayName: 'Latent Composite',
      category: 'latent',
      description: 'Pastes samples_from into samples_to at (x, y) pixels, optionally feathering its inner edges.',
      inputs: { required: { samples_to: LATENT, samples_from: LATENT, x: PIXELS(), y: PIXELS(), feather: PIXELS() } },
      outputs: [{ type: 'LATENT' }],
      execute({ samples_to, samples_from, x, y, feather }) {
        const to = samples_to as LatentValue;
        return [{ ...to, samples: latentComposite(to.samples, (samples_from as LatentValue).samples, Number(x), Number(y), Number(feather)) }];
      },
    },
    {
      name: 'LatentCompositeMasked',
      displayName: 'LatentCompositeMasked',
      category: 'latent',
      inputs: {
        required: { destination: LATENT, source: LATENT, x: PIXELS(), y: PIXELS(), resize_source: { type: 'BOOLEAN', default: false } },
        optional: { mask: { type: 'MASK' } },
      },
      outputs: [{ type: 'LATENT' }],
      execute({ destination, source, x, y, resize_source, mask }) {
        const d = destination as LatentValue;
        const m = mask as MaskTensor | undefined;
        return [{ ...d, samples: latentCompositeMasked(d.samples, (source as LatentValue).samples, Number(x), Number(y), Boolean(resize_source), m) }];
      },
    },
    {
      name: 'LatentBlend',
      displayName: 'Latent Blend',
      category: '_for_testing',
      inputs: { required: { samples1: LATENT, samples2: LATENT, blend_factor: { type: 'FLOAT', default: 0.5, min: 0, max: 1, step: 0.01 } } },
      outputs: [{ type: 'LATENT' }],
      execute({ samples1, samples2, blend_factor }) {
        const a = samples1 as LatentValue;
        return [{ ...a, samples: latentBlend(a.samples, (samples2 as LatentValue).samples, Number(blend_factor)) }];
      },
    },
    {
      name: 'LatentCrop',
      displayName: 'Crop Latent',
      category: 'latent/transform',
      inputs: { required: { samples: LATENT, width: { ...PIXELS(512), min: 64 }, height: { ...PIXELS(512), min: 64 }, x: PIXELS(), y: PIXELS() } },
      outputs: [{ type: 'LATENT' }],
      execute({ samples, width, height, x, y }) {
        const l = samples as LatentValue;
        return [{ ...l, samples: latentCrop(l.samples, Number(width), Number(height), Number(x), Number(y)) }];
      },
    },
    {
      name: 'RepeatLatentBatch',
      displayName: 'Repeat Latent Batch',
      category: 'latent/batch',
      inputs: { required: { samples: LATENT, amount: { type: 'INT', default: 1, min: 1, max: 64 } } },
      outputs: [{ type: 'LATENT' }],
      execute({ samples, amount }) {
        const l = samples as LatentValue;
        return [fromParts(l, repeatLatentBatch(parts(l), Number(amount)))];
      },
    },
    {
      name: 'LatentFromBatch',
      displayName: 'Latent From Batch',
      category: 'latent/batch',
      description: 'Items [batch_index, batch_index + length) of a batch; they keep their noise (batch_index) when sampled.',
      inputs: { required: { samples: LATENT, batch_index: { type: 'INT', default: 0, min: 0, max: 63 }, length: { type: 'INT', default: 1, min: 1, max: 64 } } },
      outputs: [{ type: 'LATENT' }],
      execute({ samples, batch_index, length }) {
        const l = samples as LatentValue;
        return [fromParts(l, latentFromBatch(parts(l), Number(batch_index), Number(length)))];
      },
    },
    {
      name: 'SetLatentNoiseMask',
      displayName: 'Set Latent Noise Mask',
      category: 'latent/inpaint',
      description: 'The sampler only changes the latent where the mask is 1 (inpainting with any model).',
      inputs: { required: { samples: LATENT, mask: { type: 'MASK' } } },
      outputs: [{ type: 'LATENT' }],
      execute({ samples, mask }) {
        const m = mask as MaskTensor;
        const [h, w] = m.shape.slice(-2) as [number, number];
        const shape: Shape4 = [m.data.length / (h * w), 1, h, w];
        return [{ ...(samples as LatentValue), noiseMask: { data: m.data, shape } }];
      },
    },
  ];
}
