import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageBatch } from '../../runtime/image/image.js';
import { inpaintConditioning, vaeEncodeForInpaint } from '../../runtime/image/inpaint-prep.js';
import { loadImageMask } from '../../runtime/image/load-mask.js';
import { asMask, featherMask, growMask, imageToMask, invertMask, MASK_CHANNELS, maskToImage, padForOutpaint, solidMask } from '../../runtime/image/masks.js';
import type { Vae } from '../../runtime/models/vae/index.js';
import { mapEntries } from '../../runtime/sampling/cond-entries.js';
import type { MaskTensor } from '../../runtime/sampling/types.js';
import type { RuntimeEnv } from '../env.js';
import type { NodeSpec } from '../spec.js';
import { insideFolder, listInputImages } from './image-nodes.js';
import { MAX_RESOLUTION } from './latent-nodes.js';
import type { ConditioningValue, LatentValue } from './types.js';

/** ComfyUI's mask nodes and the two inpainting encoders; the math is in runtime/image/masks.ts and inpaint-prep.ts. */

const MASK = { type: 'MASK' } as const;
const asMaskInput = (v: unknown) => {
  const m = v as MaskTensor;
  return asMask(m.data, m.shape);
};

export function maskNodes(env: RuntimeEnv): NodeSpec[] {
  return [
    {
      name: 'LoadImageMask',
      displayName: 'Load Image (as Mask)',
      category: 'mask',
      inputs: { required: { image: { type: 'COMBO', options: () => listInputImages(env.inputDir), image_upload: true }, channel: { type: 'COMBO', options: ['alpha', 'red', 'green', 'blue'] } } },
      outputs: [{ type: 'MASK' }],
      isChanged: ({ image }) => {
        const p = join(env.inputDir, String(image));
        return existsSync(p) ? statSync(p).mtimeMs : NaN;
      },
      execute: async ({ image, channel }) => [await loadImageMask(insideFolder(env.inputDir, String(image), 'image'), String(channel))],
    },
    {
      name: 'ImageToMask',
      displayName: 'Convert Image to Mask',
      category: 'mask',
      inputs: { required: { image: { type: 'IMAGE' }, channel: { type: 'COMBO', options: MASK_CHANNELS } } },
      outputs: [{ type: 'MASK' }],
      execute: ({ image, channel }) => [imageToMask(image as ImageBatch, channel as (typeof MASK_CHANNELS)[number])],
    },
    {
      name: 'MaskToImage',
      displayName: 'Convert Mask to Image',
      category: 'mask',
      inputs: { required: { mask: MASK } },
      outputs: [{ type: 'IMAGE' }],
      execute: ({ mask }) => [maskToImage(asMaskInput(mask))],
    },
    {
      name: 'SolidMask',
      displayName: 'SolidMask',
      category: 'mask',
      inputs: {
        required: {
          value: { type: 'FLOAT', default: 1, min: 0, max: 1, step: 0.01 },
          width: { type: 'INT', default: 512, min: 1, max: MAX_RESOLUTION, step: 1 },
          height: { type: 'INT', default: 512, min: 1, max: MAX_RESOLUTION, step: 1 },
        },
      },
      outputs: [{ type: 'MASK' }],
      execute: ({ value, width, height }) => [solidMask(Number(value), Number(width), Number(height))],
    },
    {
      name: 'InvertMask',
      displayName: 'InvertMask',
      category: 'mask',
      inputs: { required: { mask: MASK } },
      outputs: [{ type: 'MASK' }],
      execute: ({ mask }) => [invertMask(asMaskInput(mask))],
    },
    {
      name: 'GrowMask',
      displayName: 'GrowMask',
      category: 'mask',
      description: 'Grows (expand > 0) or shrinks (< 0) the mask by that many pixels.',
      inputs: { required: { mask: MASK, expand: { type: 'INT', default: 0, min: -MAX_RESOLUTION, max: MAX_RESOLUTION, step: 1 }, tapered_corners: { type: 'BOOLEAN', default: true } } },
      outputs: [{ type: 'MASK' }],
      execute: ({ mask, expand, tapered_corners }) => [growMask(asMaskInput(mask), Number(expand), Boolean(tapered_corners))],
    },
    {
      name: 'FeatherMask',
      displayName: 'FeatherMask',
      category: 'mask',
      inputs: {
        required: {
          mask: MASK,
          left: { type: 'INT', default: 0, min: 0, max: MAX_RESOLUTION, step: 1 },
          top: { type: 'INT', default: 0, min: 0, max: MAX_RESOLUTION, step: 1 },
          right: { type: 'INT', default: 0, min: 0, max: MAX_RESOLUTION, step: 1 },
          bottom: { type: 'INT', default: 0, min: 0, max: MAX_RESOLUTION, step: 1 },
        },
      },
      outputs: [{ type: 'MASK' }],
      execute: ({ mask, left, top, right, bottom }) => [featherMask(asMaskInput(mask), Number(left), Number(top), Number(right), Number(bottom))],
    },
    {
      name: 'ImagePadForOutpaint',
      displayName: 'Pad Image for Outpainting',
      category: 'image',
      inputs: {
        required: {
          image: { type: 'IMAGE' },
          left: { type: 'INT', default: 0, min: 0, max: MAX_RESOLUTION, step: 8 },
          top: { type: 'INT', default: 0, min: 0, max: MAX_RESOLUTION, step: 8 },
          right: { type: 'INT', default: 0, min: 0, max: MAX_RESOLUTION, step: 8 },
          bottom: { type: 'INT', default: 0, min: 0, max: MAX_RESOLUTION, step: 8 },
          feathering: { type: 'INT', default: 40, min: 0, max: MAX_RESOLUTION, step: 1 },
        },
      },
      outputs: [{ type: 'IMAGE' }, { type: 'MASK' }],
      execute({ image, left, top, right, bottom, feathering }) {
        const r = padForOutpaint(image as ImageBatch, Number(left), Number(top), Number(right), Number(bottom), Number(feathering));
        return [r.image, r.mask];
      },
    },
    {
      name: 'VAEEncodeForInpaint',
      displayName: 'VAE Encode (for Inpainting)',
      category: 'latent/inpaint',
      description: 'Encodes the image with the masked part greyed out; the latent carries the grown mask as its noise mask.',
      inputs: { required: { pixels: { type: 'IMAGE' }, vae: { type: 'VAE' }, mask: MASK, grow_mask_by: { type: 'INT', default: 6, min: 0, max: 64, step: 1 } } },
      outputs: [{ type: 'LATENT' }],
      async execute({ pixels, vae, mask, grow_mask_by }) {
        const m = mask as MaskTensor;
        const r = await vaeEncodeForInpaint(vae as Vae, pixels as ImageBatch, m, Number(grow_mask_by));
        const latent: LatentValue = { samples: r.samples, noiseMask: r.noiseMask };
        return [latent];
      },
    },
    {
      name: 'InpaintModelConditioning',
      displayName: 'InpaintModelConditioning',
      category: 'conditioning/inpaint',
      description: "Gives an inpainting model (9 input channels) the masked image and mask; noise_mask also limits sampling to the mask.",
      inputs: {
        required: {
          positive: { type: 'CONDITIONING' },
          negative: { type: 'CONDITIONING' },
          vae: { type: 'VAE' },
          pixels: { type: 'IMAGE' },
          mask: MASK,
          noise_mask: { type: 'BOOLEAN', default: true, tooltip: 'Also set the mask as the latent noise mask (usually better results).' },
        },
      },
      outputs: [
        { type: 'CONDITIONING', name: 'positive' },
        { type: 'CONDITIONING', name: 'negative' },
        { type: 'LATENT', name: 'latent' },
      ],
      async execute({ positive, negative, vae, pixels, mask, noise_mask }) {
        const r = await inpaintConditioning(vae as Vae, pixels as ImageBatch, mask as MaskTensor);
        const set = (c: unknown) => mapEntries(c as ConditioningValue, (e) => ({ ...e, concatLatent: r.concatLatent, concatMask: r.mask }));
        const latent: LatentValue = { samples: r.samples };
        if (noise_mask) latent.noiseMask = r.mask;
        return [set(positive), set(negative), latent];
      },
    },
  ];
}
