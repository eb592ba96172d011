import type { Shape4 } from '../sampling/types.js';

/**
 * Resizes a ControlNet hint [B, C, H, W] to (height, width) the way ComfyUI's common_upscale does with
 * 'nearest-exact' and crop 'center': crop the source to the target aspect ratio around its centre, then
 * nearest sampling at pixel centres (floor((i + 0.5) * in / out)).
 */
export function resizeHint(data: Float32Array, shape: Shape4, height: number, width: number): { data: Float32Array; shape: Shape4 } {
  const [B, C, H, W] = shape;
  if (H === height && W === width) return { data, shape };
  let x0 = 0;
  let y0 = 0;
  let cw = W;
  let ch = H;
  const oldAspect = W / H;
  const newAspect = width / height;
  if (oldAspect > newAspect) {
    cw = Math.round(W * (newAspect / oldAspect));
    x0 = Math.round((W - cw) / 2);
  } else if (oldAspect < newAspect) {
    ch = Math.round(H * (oldAspect / newAspect));
    y0 = Math.round((H - ch) / 2);
  }
  const out = new Float32Array(B * C * height * width);
  const sy = new Int32Array(height);
  const sx = new Int32Array(width);
  for (let i = 0; i < height; i++) sy[i] = y0 + Math.min(ch - 1, Math.floor((i + 0.5) * (ch / height)));
  for (let j = 0; j < width; j++) sx[j] = x0 + Math.min(cw - 1, Math.floor((j + 0.5) * (cw / width)));
  for (let bc = 0; bc < B * C; bc++) {
    const src = bc * H * W;
    const dst = bc * height * width;
    for (let i = 0; i < height; i++) {
      const row = src + sy[i]! * W;
      for (let j = 0; j < width; j++) out[dst + i * width + j] = data[row + sx[j]!]!;
    }
  }
  return { data: out, shape: [B, C, height, width] };
}
