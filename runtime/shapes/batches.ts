/**
 * Training batches of the Shapes model, each drawn from generators seeded by (seed, step) alone, so a
 * resumed run sees exactly the batches an uninterrupted one would.
 */
import { addOffsetNoise } from '../training/batches.js';
import { drawInt, stepGenerator } from '../training/buckets.js';
import { renderScene, sampleScene } from './dataset.js';

/** Scenes the VAE and the latent cache draw from (the UNet's share comes first, so it is the same set). */
export const SCENE_POOL = 1 << 20;

/** RGB HWC bytes → [3, h, w] floats in [0, 1] at `offset` of `out`. */
export function toPlanar(rgb: Uint8Array, w: number, h: number, out: Float32Array, offset: number): void {
  const plane = w * h;
  for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) out[offset + c * plane + i] = rgb[i * 3 + c]! / 255;
}

/**
 * A VAE batch: scenes rendered at a size drawn per step (so objects appear at several scales, as the
 * resolution experiments will decode them), then a random `crop`² window of each.
 */
export function vaeBatch(seed: number, step: number, size: number, crop: number): { image: Float32Array; noise: Float32Array; dims: number[] } {
  const gen = stepGenerator(seed, step, 0);
  const renderSizes = [64, 96, 128, 128, 160, 192];
  const side = Math.max(crop, renderSizes[drawInt(gen, renderSizes.length)]!);
  const image = new Float32Array(size * 3 * crop * crop);
  const tile = new Uint8Array(crop * crop * 3);
  for (let b = 0; b < size; b++) {
    const scene = sampleScene(seed, drawInt(gen, SCENE_POOL));
    const rgb = renderScene(scene, side, side);
    const ox = drawInt(gen, side - crop + 1);
    const oy = drawInt(gen, side - crop + 1);
    for (let y = 0; y < crop; y++) tile.set(rgb.subarray(((oy + y) * side + ox) * 3, ((oy + y) * side + ox + crop) * 3), y * crop * 3);
    toPlanar(tile, crop, crop, image, b * 3 * crop * crop);
  }
  const lat = crop / 8;
  return { image, noise: stepGenerator(seed, step, 1).randn(size * 4 * lat * lat), dims: [size, 3, crop, crop] };
}

export interface LatentCache {
  /** [n, 4, 16, 16] model-space latents (scaled as SD1's 0.18215 expects). */
  latents: Float32Array;
  /** Caption index per latent into `contexts`. */
  captions: Int32Array;
  /** [captions, 77, D]; row 0 is the empty prompt (caption dropout). */
  contexts: Float32Array;
  count: number;
  plane: number;
  contextSize: number;
}

export interface UnetBatch {
  x: Float32Array;
  target: Float32Array;
  timesteps: Float32Array;
  context: Float32Array;
  dims: [number, number, number, number];
  contextDims: [number, number, number];
}

/**
 * x_t = √ᾱ·x0 + √(1−ᾱ)·ε at uniform timesteps; the caption is replaced by the empty prompt with probability `dropout`.
 * `offsetNoise` adds a per-image, per-channel constant of that standard deviation to ε ("offset noise"): SD1's
 * schedule keeps √ᾱ = 0.068 of the signal at its last timestep, and for flat-colour pictures the latent's mean
 * then says more about the background than the noise hides, so a model trained without it reads the colours off
 * the initial noise instead of the prompt.
 */
export function unetBatch(cache: LatentCache, alphasCumprod: Float64Array, seed: number, step: number, size: number, dropout: number, latentSide: number, offsetNoise = 0): UnetBatch {
  const gen = stepGenerator(seed, step, 3);
  const plane = cache.plane;
  const x = new Float32Array(size * plane);
  const noise = stepGenerator(seed, step, 4).randn(size * plane);
  addOffsetNoise(noise, size, plane / (latentSide * latentSide), offsetNoise, stepGenerator(seed, step, 5));
  const timesteps = new Float32Array(size);
  const context = new Float32Array(size * cache.contextSize);
  for (let b = 0; b < size; b++) {
    const k = drawInt(gen, cache.count);
    const t = drawInt(gen, alphasCumprod.length);
    const drop = gen.uniformDouble() < dropout;
    // Left-right mirroring keeps every shape (triangles point up) and doubles the positions seen.
    const flip = gen.uniformDouble() < 0.5;
    timesteps[b] = t;
    const a = Math.fround(Math.sqrt(alphasCumprod[t]!));
    const s = Math.fround(Math.sqrt(1 - alphasCumprod[t]!));
    const src = cache.latents.subarray(k * plane, (k + 1) * plane);
    const w = latentSide;
    for (let i = 0; i < plane; i++) {
      const j = flip ? i - (i % w) + (w - 1 - (i % w)) : i;
      x[b * plane + i] = a * src[j]! + s * noise[b * plane + i]!;
    }
    const row = drop ? 0 : cache.captions[k]!;
    context.set(cache.contexts.subarray(row * cache.contextSize, (row + 1) * cache.contextSize), b * cache.contextSize);
  }
  const d = cache.contextSize / 77;
  return { x, target: noise, timesteps, context, dims: [size, 4, latentSide, latentSide], contextDims: [size, 77, d] };
}
