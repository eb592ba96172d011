import sharp from 'sharp';
import type { MaskTensor } from '../sampling/types.js';

/** LoadImageMask: one channel of the file as a mask; alpha is inverted (transparent = 1), a missing channel gives 64x64 zeros. */
export async function loadImageMask(path: string, channel: string): Promise<MaskTensor> {
  const img = sharp(path).rotate();
  const meta = await img.metadata();
  const c = ['red', 'green', 'blue', 'alpha'].indexOf(channel);
  if (c < 0) throw new Error(`LoadImageMask: unknown channel "${channel}"`);
  if (c === 3 && !meta.hasAlpha) return { data: new Float32Array(64 * 64), shape: [1, 64, 64] };
  const { data, info } = await img.ensureAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  const n = info.width * info.height;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = Math.fround(data[i * info.channels + c]! / 255);
    out[i] = c === 3 ? Math.fround(1 - v) : v;
  }
  return { data: out, shape: [1, info.height, info.width] };
}

