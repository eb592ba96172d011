/** Tensor helpers shared by CFG and calc_cond_batch: batch / token repetition and ControlNet hint broadcasting. */
import type { Shape4 } from './types.js';

export function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

export function lcm(a: number, b: number): number {
  return (a * b) / gcd(a, b);
}

/** comfy.utils.repeat_to_batch_size on the leading dimension. */
export function repeatToBatch(data: Float32Array, batch: number, target: number): Float32Array {
  if (batch === target) return data;
  const item = data.length / batch;
  const out = new Float32Array(item * target);
  for (let i = 0; i < target; i++) out.set(data.subarray((i % batch) * item, (i % batch + 1) * item), i * item);
  return out;
}

/** Tiles the token axis `times` times ([B, L, D] -> [B, L * times, D]), ComfyUI's `c.repeat(1, n, 1)`. */
export function repeatTokens(context: Float32Array, batch: number, tokens: number, dim: number, times: number): Float32Array {
  if (times === 1) return context;
  const per = tokens * dim;
  const out = new Float32Array(batch * per * times);
  for (let b = 0; b < batch; b++) {
    const src = context.subarray(b * per, (b + 1) * per);
    for (let k = 0; k < times; k++) out.set(src, (b * times + k) * per);
  }
  return out;
}

/**
 * comfy.controlnet.broadcast_image_to, then expanded to the full call batch: the model side always
 * gets one hint per batch item.
 */
export function broadcastHint(hint: Float32Array, hintShape: Shape4, targetBatch: number, chunks: number): { data: Float32Array; shape: Shape4 } {
  const [hb, c, h, w] = hintShape;
  const item = c * h * w;
  let data = hint;
  let batch = hb;
  if (batch !== 1) {
    const perChunk = Math.floor(targetBatch / chunks);
    const kept = Math.min(batch, perChunk);
    const chunk = new Float32Array(perChunk * item);
    for (let i = 0; i < perChunk; i++) chunk.set(hint.subarray((i % kept) * item, (i % kept + 1) * item), i * item);
    data = chunk;
    batch = perChunk;
  }
  return { data: repeatToBatch(data, batch, targetBatch), shape: [targetBatch, c, h, w] };
}

/** x[:, :, y:y+h, x:x+w] of an NCHW tensor. */
export function cropNCHW(data: Float32Array, shape: Shape4, y: number, x: number, h: number, w: number): Float32Array {
  const [B, C, H, W] = shape;
  if (y === 0 && x === 0 && h === H && w === W) return data;
  const out = new Float32Array(B * C * h * w);
  for (let p = 0; p < B * C; p++) {
    for (let i = 0; i < h; i++) {
      const src = (p * H + y + i) * W + x;
      out.set(data.subarray(src, src + w), (p * h + i) * w);
    }
  }
  return out;
}
