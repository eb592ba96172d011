/**
 * A checkpoint's own Latent2RGB preview map. The built-in factors are fitted to SD1.5's / SDXL's VAEs; a model with
 * another VAE (ResFlow Shapes) previews in false colours with them. Such a checkpoint may carry its map in its
 * metadata, fitted by least squares from latents to the images they encode (pooled to latent resolution).
 */
import { z } from 'zod';
import type { LatentFormat } from './model-sampling.js';

export const PREVIEW_FACTORS_KEY = 'resflow.latent_rgb_factors';

export interface PreviewFactors {
  /** [latent channel][r, g, b] */
  factors: number[][];
  bias: number[];
}

const rgb = z.array(z.number().finite()).length(3);
const schema = z.object({ factors: z.array(rgb).min(1), bias: rgb });

/**
 * Least-squares fit of rgb ≈ Σ_k latent_k · factors[k] + bias over every latent pixel. `latents` is [n, C, plane],
 * `images` [n, 3, plane] in [-1, 1] (the preview shows (v + 1) / 2).
 */
export function fitPreviewFactors(latents: Float32Array, images: Float32Array, count: number, channels: number): PreviewFactors {
  const plane = latents.length / (count * channels);
  if (!Number.isInteger(plane) || images.length !== count * 3 * plane) throw new RangeError('fitPreviewFactors: latents and images do not describe the same pixels');
  const f = channels + 1; // the latent channels and a constant
  const ata = Array.from({ length: f }, () => new Float64Array(f));
  const aty = Array.from({ length: f }, () => new Float64Array(3));
  const x = new Float64Array(f);
  for (let n = 0; n < count; n++) {
    for (let p = 0; p < plane; p++) {
      for (let k = 0; k < channels; k++) x[k] = latents[(n * channels + k) * plane + p]!;
      x[channels] = 1;
      for (let i = 0; i < f; i++) {
        for (let j = 0; j < f; j++) ata[i]![j]! += x[i]! * x[j]!;
        for (let c = 0; c < 3; c++) aty[i]![c]! += x[i]! * images[(n * 3 + c) * plane + p]!;
      }
    }
  }
  const solved = solve(ata, aty);
  return { factors: solved.slice(0, channels), bias: solved[channels]! };
}

/** Gauss-Jordan with partial pivoting on the normal equations (f ≤ 17 unknowns, 3 right-hand sides). */
function solve(a: Float64Array[], b: Float64Array[]): number[][] {
  const f = a.length;
  const m = a.map((row, i) => [...row, ...b[i]!]);
  for (let col = 0; col < f; col++) {
    let pivot = col;
    for (let r = col + 1; r < f; r++) if (Math.abs(m[r]![col]!) > Math.abs(m[pivot]![col]!)) pivot = r;
    if (Math.abs(m[pivot]![col]!) < 1e-12) throw new RangeError('fitPreviewFactors: the latents do not span their channels');
    [m[col], m[pivot]] = [m[pivot]!, m[col]!];
    for (let r = 0; r < f; r++) {
      if (r === col) continue;
      const k = m[r]![col]! / m[col]![col]!;
      for (let c = col; c < f + 3; c++) m[r]![c]! -= k * m[col]![c]!;
    }
  }
  return m.map((row, i) => [0, 1, 2].map((c) => Math.round((row[f + c]! / m[i]![i]!) * 1e4) / 1e4));
}

/** `format` with the preview map the checkpoint's metadata carries, if any; a malformed one names the key and file. */
export function withPreviewFactors(format: LatentFormat, metadata: Readonly<Record<string, string>>, file: string): LatentFormat {
  const text = metadata[PREVIEW_FACTORS_KEY];
  if (text === undefined) return format;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const r = schema.safeParse(parsed);
  if (!r.success || r.data.factors.length !== format.rgbFactors.length) {
    throw new Error(`${file}: metadata "${PREVIEW_FACTORS_KEY}" must be {"factors": [${format.rgbFactors.length} × [r, g, b]], "bias": [r, g, b]}`);
  }
  return { ...format, rgbFactors: r.data.factors, rgbBias: r.data.bias };
}
