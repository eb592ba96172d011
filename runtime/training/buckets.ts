/**
 * Multi-resolution buckets as the ResAdapter recipe samples them: a training resolution x (the side of a
 * square of the same area) drawn with p(x) ∝ |x − s|² over a list, s being the base resolution the model
 * was trained at (weight 0, so never drawn), and a set of aspect ratios. Every image is assigned the ratio
 * nearest its own, so cropping removes as little as possible.
 */
import { TorchGenerator } from '../sampling/torch-rng.js';

export const RECIPE_ASPECTS = '1:1, 4:3, 3:4, 3:2, 2:3, 16:9, 9:16';

export interface Aspect {
  label: string;
  /** width / height */
  ratio: number;
}

export interface Bucket {
  resolution: number;
  aspect: Aspect;
  width: number;
  height: number;
}

export class DatasetConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatasetConfigError';
  }
}

export function parseAspects(text: string): Aspect[] {
  const out: Aspect[] = [];
  for (const part of text.split(/[,\s]+/).filter(Boolean)) {
    const m = /^(\d+(?:\.\d+)?)[:x/](\d+(?:\.\d+)?)$/.exec(part);
    if (!m || Number(m[1]) <= 0 || Number(m[2]) <= 0) throw new DatasetConfigError(`aspect ratio "${part}" is not of the form W:H (e.g. 16:9)`);
    const ratio = Number(m[1]) / Number(m[2]);
    if (!out.some((a) => Math.abs(a.ratio - ratio) < 1e-9)) out.push({ label: `${m[1]}:${m[2]}`, ratio });
  }
  if (!out.length) throw new DatasetConfigError('no aspect ratios given');
  return out;
}

export function parseResolutions(text: string): number[] {
  const out = text
    .split(/[,\s]+/)
    .filter(Boolean)
    .map((p) => {
      const v = Number(p);
      if (!Number.isInteger(v) || v <= 0) throw new DatasetConfigError(`resolution "${p}" is not a positive integer`);
      return v;
    });
  if (!out.length) throw new DatasetConfigError('no training resolutions given');
  return [...new Set(out)].sort((a, b) => a - b);
}

/** Width and height of the bucket with area ≈ x² and the given ratio, each a multiple of `step`. */
export function bucketSize(x: number, ratio: number, step: number): { width: number; height: number } {
  const round = (v: number) => Math.max(step, Math.round(v / step) * step);
  return { width: round(x * Math.sqrt(ratio)), height: round(x / Math.sqrt(ratio)) };
}

/** Buckets for every (resolution, aspect) except the base resolution, which the recipe never samples. */
export function makeBuckets(resolutions: readonly number[], aspects: readonly Aspect[], base: number, step: number): Bucket[] {
  const res = resolutions.filter((x) => x !== base);
  if (!res.length) throw new DatasetConfigError(`the resolution list only holds the base resolution ${base}, which is never sampled`);
  return res.flatMap((resolution) => aspects.map((aspect) => ({ resolution, aspect, ...bucketSize(resolution, aspect.ratio, step) })));
}

export function nearestAspect(width: number, height: number, aspects: readonly Aspect[]): Aspect {
  const r = Math.log(width / height);
  return aspects.reduce((best, a) => (Math.abs(Math.log(a.ratio) - r) < Math.abs(Math.log(best.ratio) - r) ? a : best));
}

/** p(x) ∝ |x − s|², normalised over `resolutions`. */
export function resolutionWeights(resolutions: readonly number[], base: number): number[] {
  const w = resolutions.map((x) => (x - base) ** 2);
  const total = w.reduce((a, b) => a + b, 0);
  if (total === 0) throw new DatasetConfigError('every resolution equals the base resolution');
  return w.map((v) => v / total);
}

/** splitmix64 of (seed, step): independent generator seeds per step, so any step's draws are reproducible alone. */
export function stepSeed(seed: number, step: number, stream = 0): bigint {
  let z = BigInt.asUintN(64, BigInt(seed) * 0x9e3779b97f4a7c15n + BigInt(step) * 0xbf58476d1ce4e5b9n + BigInt(stream) * 0x94d049bb133111ebn);
  z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
  z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
  return z ^ (z >> 31n);
}

export function stepGenerator(seed: number, step: number, stream = 0): TorchGenerator {
  return new TorchGenerator(stepSeed(seed, step, stream));
}

/** An index drawn with probability proportional to `weights`. */
export function drawWeighted(gen: TorchGenerator, weights: readonly number[]): number {
  const total = weights.reduce((a, b) => a + b, 0);
  let u = gen.uniformDouble() * total;
  for (let i = 0; i < weights.length; i++) {
    u -= weights[i]!;
    if (u < 0 && weights[i]! > 0) return i;
  }
  for (let i = weights.length - 1; i >= 0; i--) if (weights[i]! > 0) return i;
  throw new Error('drawWeighted: every weight is zero');
}

export function drawInt(gen: TorchGenerator, n: number): number {
  return Math.min(n - 1, Math.floor(gen.uniformDouble() * n));
}
