/**
 * Pixel-side preparation of ComfyUI's inpainting nodes (VAEEncodeForInpaint, InpaintModelConditioning):
 * the mask resized to the image, pixels cropped to the encoder's multiple, masked pixels set to grey
 * before encoding, and the grown noise mask.
 */
import type { ImageBatch } from './image.js';
import { resizeNCHW } from './resize.js';
import type { Shape4 } from './upscale.js';

const f32 = Math.fround;

/** torch.round: halves to even. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** A MASK ([H, W], [B, H, W] or [B, 1, H, W]) bilinearly resized to h x w as [B, 1, h, w]. */
export function maskToSize(data: Float32Array, shape: readonly number[], h: number, w: number): { data: Float32Array; shape: Shape4 } {
  const mh = shape[shape.length - 2]!;
  const mw = shape[shape.length - 1]!;
  const mb = data.length / (mh * mw);
  return { data: resizeNCHW(data, [mb, 1, mh, mw], h, w, 'bilinear', false).data, shape: [mb, 1, h, w] };
}

/** Centre crop of pixels (NHWC) and mask ([B,1,H,W]) to multiples of `multiple`. */
export function cropToMultiple(img: ImageBatch, mask: { data: Float32Array; shape: Shape4 }, multiple: number): { pixels: ImageBatch; mask: { data: Float32Array; shape: Shape4 } } {
  const [B, H, W, C] = img.shape;
  const h = Math.floor(H / multiple) * multiple;
  const w = Math.floor(W / multiple) * multiple;
  if (h === H && w === W) return { pixels: img, mask };
  if (h === 0 || w === 0) throw new Error(`image ${W}x${H} is smaller than the VAE's ${multiple}-pixel block`);
  const oy = Math.floor((H % multiple) / 2);
  const ox = Math.floor((W % multiple) / 2);
  const px = new Float32Array(B * h * w * C);
  for (let b = 0; b < B; b++) for (let y = 0; y < h; y++) px.set(img.data.subarray(((b * H + oy + y) * W + ox) * C, ((b * H + oy + y) * W + ox + w) * C), ((b * h + y) * w) * C);
  const mb = mask.shape[0];
  const md = new Float32Array(mb * h * w);
  for (let b = 0; b < mb; b++) for (let y = 0; y < h; y++) md.set(mask.data.subarray((b * H + oy + y) * W + ox, (b * H + oy + y) * W + ox + w), (b * h + y) * w);
  return { pixels: { data: px, shape: [B, h, w, C] }, mask: { data: md, shape: [mb, 1, h, w] } };
}

/** Pixels where round(mask) == 1 become 0.5 in the first three channels: (p - 0.5) * (1 - round(m)) + 0.5. */
export function greyOutMasked(img: ImageBatch, mask: { data: Float32Array; shape: Shape4 }): ImageBatch {
  const [B, H, W, C] = img.shape;
  const mb = mask.shape[0];
  const out = Float32Array.from(img.data);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < H * W; i++) {
      const m = f32(1 - roundHalfEven(mask.data[(b % mb) * H * W + i]!));
      for (let k = 0; k < Math.min(3, C); k++) {
        const j = (b * H * W + i) * C + k;
        out[j] = f32(f32(f32(out[j]! - 0.5) * m) + 0.5);
      }
    }
  }
  return { data: out, shape: [B, H, W, C] };
}

/**
 * VAEEncodeForInpaint's noise mask: clamp(conv2d(round(mask), ones(g, g), padding ceil((g-1)/2)), 0, 1),
 * cropped to the image and rounded (an even g grows the mask one cell more down/right than up/left).
 */
export function growNoiseMask(mask: { data: Float32Array; shape: Shape4 }, grow: number): { data: Float32Array; shape: Shape4 } {
  const [B, , H, W] = mask.shape;
  if (grow === 0) return { data: Float32Array.from(mask.data, roundHalfEven), shape: [B, 1, H, W] };
  const pad = Math.ceil((grow - 1) / 2);
  const out = new Float32Array(B * H * W);
  for (let b = 0; b < B; b++) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        let s = 0;
        for (let dy = 0; dy < grow; dy++) {
          const yy = y - pad + dy;
          if (yy < 0 || yy >= H) continue;
          for (let dx = 0; dx < grow; dx++) {
            const xx = x - pad + dx;
            if (xx >= 0 && xx < W) s += roundHalfEven(mask.data[(b * H + yy) * W + xx]!);
          }
        }
        out[(b * H + y) * W + x] = roundHalfEven(Math.min(1, Math.max(0, s)));
      }
    }
  }
  return { data: out, shape: [B, 1, H, W] };
}

/** What both inpainting nodes need from a VAE: its encoder and pixel block size. */
export interface InpaintEncoder {
  downscale: number;
  encode(image: ImageBatch): Promise<{ data: Float32Array; shape: readonly number[] }>;
}

type Latent4 = { data: Float32Array; shape: Shape4 };

/** VAEEncodeForInpaint: latent of the greyed-out image and the grown noise mask. */
export async function vaeEncodeForInpaint(vae: InpaintEncoder, img: ImageBatch, mask: { data: Float32Array; shape: readonly number[] }, grow: number): Promise<{ samples: Latent4; noiseMask: Latent4 }> {
  const [, H, W] = img.shape;
  const sized = maskToSize(mask.data, mask.shape, H, W);
  const { pixels, mask: m } = cropToMultiple(img, sized, vae.downscale);
  const z = await vae.encode(greyOutMasked(pixels, m));
  return { samples: { data: z.data, shape: [...z.shape] as Shape4 }, noiseMask: growNoiseMask(m, grow) };
}

/**
 * InpaintModelConditioning: the greyed-out image (cropped to multiples of 8) encoded for the model's extra
 * channels, the original image encoded as the latent, and the mask at image size.
 */
export async function inpaintConditioning(vae: InpaintEncoder, img: ImageBatch, mask: { data: Float32Array; shape: readonly number[] }): Promise<{ concatLatent: Latent4; samples: Latent4; mask: Latent4 }> {
  const [, H, W] = img.shape;
  const sized = maskToSize(mask.data, mask.shape, H, W);
  const { pixels, mask: m } = cropToMultiple(img, sized, 8);
  const concat = await vae.encode(greyOutMasked(pixels, m));
  const orig = await vae.encode(img);
  return { concatLatent: { data: concat.data, shape: [...concat.shape] as Shape4 }, samples: { data: orig.data, shape: [...orig.shape] as Shape4 }, mask: m };
}
