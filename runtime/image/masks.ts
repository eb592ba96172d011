/**
 * MASK operations of ComfyUI's mask nodes (comfy_extras/nodes_mask.py, nodes.py ImagePadForOutpaint).
 * A MASK is [B, H, W] float32; an IMAGE is NHWC.
 */
import type { MaskTensor } from '../sampling/types.js';
import type { ImageBatch } from './image.js';

const f32 = Math.fround;

/** Any [H, W] / [B, H, W] / [B, 1, H, W] mask as [B, H, W]. */
export function asMask(data: Float32Array, shape: readonly number[]): MaskTensor {
  const h = shape[shape.length - 2];
  const w = shape[shape.length - 1];
  if (shape.length < 2 || !h || !w || data.length % (h * w) !== 0) throw new Error(`mask: invalid shape [${shape.join(', ')}]`);
  return { data, shape: [data.length / (h * w), h, w] };
}

/**
 * GrowMask: |expand| rounds of grey dilation (expand > 0) or erosion (< 0) with a 3x3 cross, or a full 3x3
 * square without tapered corners. scipy's 'reflect' border repeats the edge cell, so neighbours clamp.
 */
export function growMask(m: MaskTensor, expand: number, taperedCorners: boolean): MaskTensor {
  const [B, H, W] = m.shape;
  const grow = expand > 0;
  let cur = Float32Array.from(m.data);
  for (let r = 0; r < Math.abs(expand); r++) {
    const next = new Float32Array(cur.length);
    for (let b = 0; b < B; b++) {
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          let v = grow ? -Infinity : Infinity;
          for (let dy = -1; dy <= 1; dy++) {
            for (let dx = -1; dx <= 1; dx++) {
              if (taperedCorners && dy !== 0 && dx !== 0) continue;
              const yy = Math.min(H - 1, Math.max(0, y + dy));
              const xx = Math.min(W - 1, Math.max(0, x + dx));
              const s = cur[(b * H + yy) * W + xx]!;
              v = grow ? Math.max(v, s) : Math.min(v, s);
            }
          }
          next[(b * H + y) * W + x] = v;
        }
      }
    }
    cur = next;
  }
  return { data: cur, shape: [B, H, W] };
}

/**
 * FeatherMask as ComfyUI computes it: left/top fade in over n columns/rows with (t+1)/n; the right/bottom
 * loops index -t, so t = 0 scales the FIRST column/row by 1/n and the last n-1 columns/rows get 2/n ... n/n.
 */
export function featherMask(m: MaskTensor, left: number, top: number, right: number, bottom: number): MaskTensor {
  const [B, H, W] = m.shape;
  const out = Float32Array.from(m.data);
  const l = Math.min(left, W);
  const r = Math.min(right, W);
  const t = Math.min(top, H);
  const bo = Math.min(bottom, H);
  const col = (x: number, f: number) => {
    const c = ((x % W) + W) % W;
    for (let b = 0; b < B; b++) for (let y = 0; y < H; y++) out[(b * H + y) * W + c] = f32(out[(b * H + y) * W + c]! * f);
  };
  const row = (y: number, f: number) => {
    const rr = ((y % H) + H) % H;
    for (let b = 0; b < B; b++) for (let x = 0; x < W; x++) out[(b * H + rr) * W + x] = f32(out[(b * H + rr) * W + x]! * f);
  };
  for (let x = 0; x < l; x++) col(x, f32((x + 1) / l));
  for (let x = 0; x < r; x++) col(-x, f32((x + 1) / r));
  for (let y = 0; y < t; y++) row(y, f32((y + 1) / t));
  for (let y = 0; y < bo; y++) row(-y, f32((y + 1) / bo));
  return { data: out, shape: [B, H, W] };
}

export function invertMask(m: MaskTensor): MaskTensor {
  return { data: Float32Array.from(m.data, (v) => f32(1 - v)), shape: [...m.shape] };
}

export function solidMask(value: number, width: number, height: number): MaskTensor {
  return { data: new Float32Array(width * height).fill(value), shape: [1, height, width] };
}

export const MASK_CHANNELS = ['red', 'green', 'blue', 'alpha'] as const;

/** ImageToMask: one channel of the image. */
export function imageToMask(img: ImageBatch, channel: (typeof MASK_CHANNELS)[number]): MaskTensor {
  const [B, H, W, C] = img.shape;
  const k = MASK_CHANNELS.indexOf(channel);
  if (k < 0 || k >= C) throw new Error(`ImageToMask: the image has ${C} channels, no ${channel} channel`);
  const out = new Float32Array(B * H * W);
  for (let i = 0; i < out.length; i++) out[i] = img.data[i * C + k]!;
  return { data: out, shape: [B, H, W] };
}

/** MaskToImage: the mask as a grey RGB image. */
export function maskToImage(m: MaskTensor): ImageBatch {
  const [B, H, W] = m.shape;
  const out = new Float32Array(B * H * W * 3);
  for (let i = 0; i < B * H * W; i++) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = m.data[i]!;
  return { data: out, shape: [B, H, W, 3] };
}

/**
 * ImagePadForOutpaint: new pixels 0.5 around the image; the mask is 1 in the padding and, with feathering,
 * ((f - d) / f)^2 inside where d (distance to a padded side: i / H - i / j / W - j) is below f.
 */
export function padForOutpaint(img: ImageBatch, left: number, top: number, right: number, bottom: number, feathering: number): { image: ImageBatch; mask: MaskTensor } {
  const [B, H, W, C] = img.shape;
  const nh = H + top + bottom;
  const nw = W + left + right;
  const data = new Float32Array(B * nh * nw * C).fill(0.5);
  for (let b = 0; b < B; b++) for (let y = 0; y < H; y++) data.set(img.data.subarray(((b * H + y) * W) * C, ((b * H + y) * W + W) * C), ((b * nh + top + y) * nw + left) * C);
  const mask = new Float32Array(nh * nw).fill(1);
  const feather = feathering > 0 && feathering * 2 < H && feathering * 2 < W;
  for (let i = 0; i < H; i++) {
    for (let j = 0; j < W; j++) {
      let v = 0;
      if (feather) {
        const d = Math.min(top !== 0 ? i : H, bottom !== 0 ? H - i : H, left !== 0 ? j : W, right !== 0 ? W - j : W);
        if (d < feathering) {
          const r = (feathering - d) / feathering;
          v = f32(r * r);
        }
      }
      mask[(top + i) * nw + left + j] = v;
    }
  }
  return { image: { data, shape: [B, nh, nw, C] }, mask: { data: mask, shape: [1, nh, nw] } };
}
