import type { ImageBatch } from '../../runtime/image/image.js';
import { asMask } from '../../runtime/image/masks.js';
import type { Vae } from '../../runtime/models/vae/index.js';
import { averageConds, combineConds, concatConds, setAreaCells, setAreaFraction, setMask, setStrength, setTimestepRange, zeroOutConds } from '../../runtime/sampling/cond-ops.js';
import { mapEntries } from '../../runtime/sampling/cond-entries.js';
import type { MaskTensor, Shape4 } from '../../runtime/sampling/types.js';
import type { NodeSpec } from '../spec.js';
import { MAX_RESOLUTION } from './latent-nodes.js';
import type { ConditioningValue, LatentValue } from './types.js';

/**
 * ComfyUI's conditioning list nodes. Areas, masks, strengths and timestep ranges are stored on each entry and
 * take effect inside the sampler (runtime/sampling/cond-resolve.ts, cond-batch.ts).
 */

const COND = { type: 'CONDITIONING' } as const;
const PIXELS = (def: number) => ({ type: 'INT', default: def, min: 0, max: MAX_RESOLUTION, step: 8 }) as const;
const FRACTION = (def: number) => ({ type: 'FLOAT', default: def, min: 0, max: 1, step: 0.01 }) as const;
const STRENGTH = { type: 'FLOAT', default: 1, min: 0, max: 10, step: 0.01 } as const;

const asCond = (v: unknown) => v as ConditioningValue;

/** InstructPixToPixConditioning: the image cropped to multiples of 8 and encoded; both sides carry it. */
async function pixToPix(positive: ConditioningValue, negative: ConditioningValue, pixels: ImageBatch, vae: Vae): Promise<[ConditioningValue, ConditioningValue, LatentValue]> {
  const [B, H, W, C] = pixels.shape;
  const h = Math.floor(H / 8) * 8;
  const w = Math.floor(W / 8) * 8;
  let px = pixels;
  if (h !== H || w !== W) {
    if (!h || !w) throw new Error(`InstructPixToPixConditioning: the image (${W}x${H}) is smaller than 8 pixels`);
    const oy = Math.floor((H % 8) / 2);
    const ox = Math.floor((W % 8) / 2);
    const data = new Float32Array(B * h * w * C);
    for (let b = 0; b < B; b++) for (let y = 0; y < h; y++) data.set(pixels.data.subarray(((b * H + oy + y) * W + ox) * C, ((b * H + oy + y) * W + ox + w) * C), (b * h + y) * w * C);
    px = { data, shape: [B, h, w, C] };
  }
  const z = await vae.encode(px);
  const concatLatent = { data: z.data, shape: [...z.shape] as Shape4 };
  const set = (c: ConditioningValue) => mapEntries(c, (e) => ({ ...e, concatLatent }));
  return [set(positive), set(negative), { samples: { data: new Float32Array(z.data.length), shape: [...z.shape] as Shape4 } }];
}

export function conditioningAreaNodes(): NodeSpec[] {
  return [
    {
      name: 'ConditioningCombine',
      displayName: 'Conditioning (Combine)',
      category: 'conditioning',
      description: 'Both lists as one: the sampler averages their predictions (weighted by area, mask and strength).',
      inputs: { required: { conditioning_1: COND, conditioning_2: COND } },
      outputs: [{ type: 'CONDITIONING' }],
      execute: ({ conditioning_1, conditioning_2 }) => [combineConds(asCond(conditioning_1), asCond(conditioning_2))],
    },
    {
      name: 'ConditioningConcat',
      displayName: 'Conditioning (Concat)',
      category: 'advanced/conditioning',
      description: "Appends the first entry of conditioning_from's tokens to every entry of conditioning_to.",
      inputs: { required: { conditioning_to: COND, conditioning_from: COND } },
      outputs: [{ type: 'CONDITIONING' }],
      execute: ({ conditioning_to, conditioning_from }) => [concatConds(asCond(conditioning_to), asCond(conditioning_from))],
    },
    {
      name: 'ConditioningAverage',
      displayName: 'Conditioning (Average)',
      category: 'conditioning',
      description: 'to * strength + from * (1 - strength), for the context and the pooled output.',
      inputs: { required: { conditioning_to: COND, conditioning_from: COND, conditioning_to_strength: { type: 'FLOAT', default: 1, min: 0, max: 1, step: 0.01 } } },
      outputs: [{ type: 'CONDITIONING' }],
      execute: ({ conditioning_to, conditioning_from, conditioning_to_strength }) => [averageConds(asCond(conditioning_to), asCond(conditioning_from), Number(conditioning_to_strength))],
    },
    {
      name: 'ConditioningSetArea',
      displayName: 'Conditioning (Set Area)',
      category: 'conditioning',
      description: 'Applies the conditioning only inside a rectangle (pixels; the UNet runs on that crop).',
      inputs: { required: { conditioning: COND, width: PIXELS(64), height: PIXELS(64), x: PIXELS(0), y: PIXELS(0), strength: STRENGTH } },
      outputs: [{ type: 'CONDITIONING' }],
      execute: (i) => [setAreaCells(asCond(i.conditioning), Number(i.width), Number(i.height), Number(i.x), Number(i.y), Number(i.strength))],
    },
    {
      name: 'ConditioningSetAreaPercentage',
      displayName: 'Conditioning (Set Area with Percentage)',
      category: 'conditioning',
      description: 'Like Set Area, in fractions of the image size (resolved when sampling starts).',
      inputs: { required: { conditioning: COND, width: FRACTION(1), height: FRACTION(1), x: FRACTION(0), y: FRACTION(0), strength: STRENGTH } },
      outputs: [{ type: 'CONDITIONING' }],
      execute: (i) => [setAreaFraction(asCond(i.conditioning), Number(i.width), Number(i.height), Number(i.x), Number(i.y), Number(i.strength))],
    },
    {
      name: 'ConditioningSetAreaStrength',
      displayName: 'Conditioning (Set Area Strength)',
      category: 'conditioning',
      inputs: { required: { conditioning: COND, strength: STRENGTH } },
      outputs: [{ type: 'CONDITIONING' }],
      execute: ({ conditioning, strength }) => [setStrength(asCond(conditioning), Number(strength))],
    },
    {
      name: 'ConditioningSetMask',
      displayName: 'Conditioning (Set Mask)',
      category: 'conditioning',
      description: "Weights the conditioning per pixel by a mask; 'mask bounds' also crops the UNet run to the mask's box.",
      inputs: {
        required: {
          conditioning: COND,
          mask: { type: 'MASK' },
          strength: STRENGTH,
          set_cond_area: { type: 'COMBO', options: ['default', 'mask bounds'] },
        },
      },
      outputs: [{ type: 'CONDITIONING' }],
      execute({ conditioning, mask, strength, set_cond_area }) {
        const m = mask as MaskTensor;
        return [setMask(asCond(conditioning), asMask(m.data, m.shape), set_cond_area === 'mask bounds', Number(strength))];
      },
    },
    {
      name: 'ConditioningZeroOut',
      displayName: 'ConditioningZeroOut',
      category: 'advanced/conditioning',
      inputs: { required: { conditioning: COND } },
      outputs: [{ type: 'CONDITIONING' }],
      execute: ({ conditioning }) => [zeroOutConds(asCond(conditioning))],
    },
    {
      name: 'ConditioningSetTimestepRange',
      displayName: 'ConditioningSetTimestepRange',
      category: 'advanced/conditioning',
      description: 'Active only between start and end (fractions of the sampling run).',
      inputs: { required: { conditioning: COND, start: { type: 'FLOAT', default: 0, min: 0, max: 1, step: 0.001 }, end: { type: 'FLOAT', default: 1, min: 0, max: 1, step: 0.001 } } },
      outputs: [{ type: 'CONDITIONING' }],
      execute: ({ conditioning, start, end }) => [setTimestepRange(asCond(conditioning), Number(start), Number(end))],
    },
    {
      name: 'InstructPixToPixConditioning',
      displayName: 'InstructPixToPixConditioning',
      category: 'conditioning/instructpix2pix',
      description: 'Encodes the image for an InstructPix2Pix model (8 input channels) and gives a matching empty latent.',
      inputs: { required: { positive: COND, negative: COND, vae: { type: 'VAE' }, pixels: { type: 'IMAGE' } } },
      outputs: [
        { type: 'CONDITIONING', name: 'positive' },
        { type: 'CONDITIONING', name: 'negative' },
        { type: 'LATENT', name: 'latent' },
      ],
      execute: async ({ positive, negative, vae, pixels }) => pixToPix(asCond(positive), asCond(negative), pixels as ImageBatch, vae as Vae),
    },
  ];
}
