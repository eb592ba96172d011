import type { ImageBatch } from '../../runtime/image/image.js';
import { commonUpscale, IMAGE_UPSCALE_METHODS, imageScaleTarget, nchwToNhwc, nhwcToNchw, scaleByTarget, type UpscaleMethodName } from '../../runtime/image/upscale.js';
import type { NodeSpec } from '../spec.js';
import { checkTensorFits, MAX_RESOLUTION } from './latent-nodes.js';

/** IMAGE resampling through common_upscale (every ComfyUI method, incl. Pillow's lanczos). */
export function upscaleImage(img: ImageBatch, width: number, height: number, method: UpscaleMethodName, crop: 'disabled' | 'center', node: string): ImageBatch {
  const [B, H, W, C] = img.shape;
  if (width === W && height === H && crop === 'disabled' && method !== 'lanczos') return img;
  checkTensorFits(`a ${width}x${height} image batch of ${B}`, B * C * width * height, node);
  const out = nchwToNhwc(commonUpscale(nhwcToNchw(img.data, img.shape), width, height, method, crop));
  return { data: out.data, shape: out.shape };
}

/** ImageScale's sizes: pixels, a 0 side keeping the aspect, both 0 = unchanged. */
export function imageScale(img: ImageBatch, method: UpscaleMethodName, width: number, height: number, crop: 'disabled' | 'center'): ImageBatch {
  const t = imageScaleTarget(img.shape[2], img.shape[1], width, height);
  return t ? upscaleImage(img, t.width, t.height, method, crop, 'ImageScale') : img;
}

export function imageOpsNodes(): NodeSpec[] {
  return [
    {
      name: 'ImageScaleBy',
      displayName: 'Upscale Image By',
      category: 'image/upscaling',
      inputs: { required: { image: { type: 'IMAGE' }, upscale_method: { type: 'COMBO', options: IMAGE_UPSCALE_METHODS }, scale_by: { type: 'FLOAT', default: 1, min: 0.01, max: 8, step: 0.01 } } },
      outputs: [{ type: 'IMAGE' }],
      execute({ image, upscale_method, scale_by }) {
        const img = image as ImageBatch;
        const t = scaleByTarget(img.shape[2], img.shape[1], Number(scale_by));
        return [upscaleImage(img, t.width, t.height, upscale_method as UpscaleMethodName, 'disabled', 'ImageScaleBy')];
      },
    },
    {
      name: 'ImageInvert',
      displayName: 'Invert Image',
      category: 'image',
      inputs: { required: { image: { type: 'IMAGE' } } },
      outputs: [{ type: 'IMAGE' }],
      execute({ image }) {
        const img = image as ImageBatch;
        return [{ data: Float32Array.from(img.data, (v) => Math.fround(1 - v)), shape: [...img.shape] }];
      },
    },
    {
      name: 'ImageBatch',
      displayName: 'Batch Images',
      category: 'image',
      description: 'image2 is appended to image1 (resized to its size, bilinear with centre crop, if they differ).',
      inputs: { required: { image1: { type: 'IMAGE' }, image2: { type: 'IMAGE' } } },
      outputs: [{ type: 'IMAGE' }],
      execute({ image1, image2 }) {
        const a = image1 as ImageBatch;
        let b = image2 as ImageBatch;
        if (a.shape[3] !== b.shape[3]) throw new Error(`ImageBatch: image1 has ${a.shape[3]} channels, image2 ${b.shape[3]}`);
        if (a.shape[1] !== b.shape[1] || a.shape[2] !== b.shape[2]) b = upscaleImage(b, a.shape[2], a.shape[1], 'bilinear', 'center', 'ImageBatch');
        const data = new Float32Array(a.data.length + b.data.length);
        data.set(a.data);
        data.set(b.data, a.data.length);
        const out: ImageBatch = { data, shape: [a.shape[0] + b.shape[0], a.shape[1], a.shape[2], a.shape[3]] };
        return [out];
      },
    },
    {
      name: 'ImageCrop',
      displayName: 'Image Crop',
      category: 'image/transform',
      inputs: {
        required: {
          image: { type: 'IMAGE' },
          width: { type: 'INT', default: 512, min: 1, max: MAX_RESOLUTION, step: 1 },
          height: { type: 'INT', default: 512, min: 1, max: MAX_RESOLUTION, step: 1 },
          x: { type: 'INT', default: 0, min: 0, max: MAX_RESOLUTION, step: 1 },
          y: { type: 'INT', default: 0, min: 0, max: MAX_RESOLUTION, step: 1 },
        },
      },
      outputs: [{ type: 'IMAGE' }],
      execute({ image, width, height, x, y }) {
        const img = image as ImageBatch;
        const [B, H, W, C] = img.shape;
        const x0 = Math.min(Number(x), W - 1);
        const y0 = Math.min(Number(y), H - 1);
        const w = Math.min(W, x0 + Number(width)) - x0;
        const h = Math.min(H, y0 + Number(height)) - y0;
        const data = new Float32Array(B * h * w * C);
        for (let b = 0; b < B; b++) for (let i = 0; i < h; i++) data.set(img.data.subarray(((b * H + y0 + i) * W + x0) * C, ((b * H + y0 + i) * W + x0 + w) * C), (b * h + i) * w * C);
        const out: ImageBatch = { data, shape: [B, h, w, C] };
        return [out];
      },
    },
  ];
}
