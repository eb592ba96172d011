import { padForOutpaint, featherMask, growMask, imageToMask, invertMask, maskToImage, solidMask, asMask, MASK_CHANNELS } from '../../image/masks.js';
import { commonUpscale, imageScaleTarget, latentUpscaleTarget, nchwToNhwc, nhwcToNchw, scaleByTarget, type Shape4, type Tensor4, type UpscaleMethodName } from '../../image/upscale.js';
import type { ImageBatch } from '../../image/image.js';
import { latentBlend, latentComposite, latentCompositeMasked, latentCrop, latentFromBatch, prepareNoise, repeatLatentBatch, type LatentParts } from '../../latent/ops.js';
import type { ConformanceCase } from '../case.js';
import type { CaseKind } from './types.js';

/** Python's str() of a float (2.0 -> "2.0"). */
export const pyFloat = (v: number) => (Number.isInteger(v) ? v.toFixed(1) : String(v));
const pyBool = (v: boolean) => (v ? 'True' : 'False');

function tensor4(c: ConformanceCase, name: string): Tensor4 {
  const t = c.input(name);
  return { data: t.data as Float32Array, shape: [...t.dims] as Shape4 };
}

function image(c: ConformanceCase, name: string): ImageBatch {
  const t = c.input(name);
  return { data: t.data as Float32Array, shape: [...t.dims] as ImageBatch['shape'] };
}

const masksKind: CaseKind = {
  name: 'nodes-masks',
  matches: (c) => c.name === 'masks',
  async run(c) {
    const p = c.json.params;
    const m = c.input('mask');
    const mask = asMask(m.data as Float32Array, m.dims);
    for (const [e, tapered] of p.grow as [number, boolean][]) c.check(`grow/expand_${e}_tapered_${pyBool(tapered)}`, growMask(mask, e, tapered).data);
    for (const [l, t, r, b] of p.feather as number[][]) c.check(`feather/${l}_${t}_${r}_${b}`, featherMask(mask, l!, t!, r!, b!).data);
    c.check('invert', invertMask(mask).data);
    const [value, w, h] = p.solid as number[];
    c.check('solid', solidMask(value!, w!, h!).data);
    const rgba = image(c, 'rgba_image');
    for (const ch of MASK_CHANNELS) c.check(`image_to_mask/${ch}`, imageToMask(rgba, ch).data);
    c.check('mask_to_image', maskToImage(mask).data);
    const pad = image(c, 'pad_image');
    for (const [l, t, r, b, f] of p.pad as number[][]) {
      const out = padForOutpaint(pad, l!, t!, r!, b!, f!);
      c.check(`pad_for_outpaint/${l}_${t}_${r}_${b}_f${f}/image`, out.image.data);
      c.check(`pad_for_outpaint/${l}_${t}_${r}_${b}_f${f}/mask`, out.mask.data);
    }
  },
};

const latentOpsKind: CaseKind = {
  name: 'nodes-latent-ops',
  matches: (c) => c.name === 'latent-ops',
  async run(c) {
    const p = c.json.params;
    const to = tensor4(c, 'samples_to');
    const from = tensor4(c, 'samples_from');
    for (const [x, y, f] of p.composite as number[][]) c.check(`composite/x${x}_y${y}_f${f}`, latentComposite(to, from, x!, y!, f!).data);
    const mask = c.input('composite_mask');
    for (const [x, y, resize, withMask] of p.composite_masked as [number, number, boolean, boolean][]) {
      const out = latentCompositeMasked(to, from, x, y, resize, withMask ? { data: mask.data as Float32Array, shape: mask.dims } : undefined);
      c.check(`composite_masked/x${x}_y${y}_resize${pyBool(resize)}_mask${pyBool(withMask)}`, out.data);
    }
    const same = tensor4(c, 'samples_same');
    // Blend factors live in the tensor names: blend/same_shape_<f> (samples_same), blend/resized_<f> (samples_from).
    for (const key of c.expected.keys().filter((k) => k.startsWith('blend/'))) {
      const m = /^blend\/(same_shape|resized)_([\d.]+)$/.exec(key);
      if (!m) throw new Error(`latent-ops: unrecognised blend tensor ${key}`);
      c.check(key, latentBlend(to, m[1] === 'resized' ? from : same, Number(m[2])).data);
    }
    for (const [w, h, x, y] of p.crop as number[][]) c.check(`crop/${w}x${h}_at_${x}_${y}`, latentCrop(to, w!, h!, x!, y!).data);
    const batch = tensor4(c, 'batch');
    const nm = (name: string) => tensor4(c, name);
    const checkParts = (prefix: string, l: LatentParts) => {
      c.check(`${prefix}/samples`, l.samples.data);
      if (c.hasExpected(`${prefix}/noise_mask`)) c.check(`${prefix}/noise_mask`, l.noiseMask?.data ?? new Float32Array(0));
      if (c.hasExpected(`${prefix}/batch_index`)) c.check(`${prefix}/batch_index`, l.batchIndex ?? []);
    };
    for (const [amount, bi] of p.repeat as [number, number[] | null][]) {
      const l: LatentParts = { samples: batch };
      let prefix = `repeat/amount_${amount}`;
      if (bi) {
        l.noiseMask = nm('noise_mask_2');
        l.batchIndex = bi;
        prefix += '_mask_batch_index';
      }
      checkParts(prefix, repeatLatentBatch(l, amount));
    }
    for (const [index, length, bi] of p.from_batch as [number, number, number[] | null][]) {
      let prefix = `from_batch/index_${index}_length_${length}`;
      const l: LatentParts = { samples: batch };
      if (bi) {
        l.batchIndex = bi;
        prefix += '_batch_index';
      }
      if (c.hasExpected(`${prefix}/noise_mask`)) l.noiseMask = nm(bi ? 'noise_mask_2' : 'noise_mask_1');
      const out = latentFromBatch(l, index, length);
      checkParts(prefix, out);
      c.check(`${prefix}/ksampler_noise`, prepareNoise(p.seed, out.samples.shape, out.batchIndex));
    }
  },
};

const latentResizeKind: CaseKind = {
  name: 'nodes-latent-resize',
  matches: (c) => c.name === 'latent-resize',
  async run(c) {
    const p = c.json.params;
    const l = tensor4(c, 'latent');
    const [, , H, W] = l.shape;
    for (const method of p.methods as UpscaleMethodName[]) {
      for (const [w, h, crop] of p.upscale_targets_pixels as [number, number, 'disabled' | 'center'][]) {
        const t = latentUpscaleTarget(W, H, w, h);
        c.check(`upscale/${method}/${w}x${h}_${crop}`, t ? commonUpscale(l, t.width, t.height, method, crop).data : l.data);
      }
      for (const s of p.scale_by as number[]) {
        const t = scaleByTarget(W, H, s);
        c.check(`upscale_by/${method}/${pyFloat(s)}`, commonUpscale(l, t.width, t.height, method, 'disabled').data);
      }
    }
  },
};

const imageResizeKind: CaseKind = {
  name: 'nodes-image-resize',
  matches: (c) => c.name === 'image-resize',
  async run(c) {
    const p = c.json.params;
    const img = image(c, 'image');
    const [, H, W] = img.shape;
    const nchw = nhwcToNchw(img.data, img.shape);
    for (const method of p.methods as UpscaleMethodName[]) {
      for (const [w, h, crop] of p.scale_targets as [number, number, 'disabled' | 'center'][]) {
        const t = imageScaleTarget(W, H, w, h);
        c.check(`scale/${method}/${w}x${h}_${crop}`, t ? nchwToNhwc(commonUpscale(nchw, t.width, t.height, method, crop)).data : img.data);
      }
      for (const s of p.scale_by as number[]) {
        const t = scaleByTarget(W, H, s);
        c.check(`scale_by/${method}/${pyFloat(s)}`, nchwToNhwc(commonUpscale(nchw, t.width, t.height, method, 'disabled')).data);
      }
    }
  },
};

export const TENSOR_OP_KINDS: CaseKind[] = [masksKind, latentOpsKind, latentResizeKind, imageResizeKind];
