import { writeSafetensorsStreaming, type StreamedTensor } from '../../safetensors/writer.js';

/**
 * Deterministic random weights for synthetic checkpoints (tests, benches, the demo model). Each tensor is
 * seeded from its own name, so values do not depend on write order or on which other tensors exist.
 */

function hashString(s: string, seed: number): number {
  let h = (2166136261 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h >>> 0;
}

/** Small fast PRNG (mulberry32) with Box-Muller normals. */
export class SeededRandom {
  private state: number;
  private spare: number | null = null;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  uniform(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const u1 = this.uniform() || 1e-12;
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }
  fillNormal(out: Float32Array, mean: number, std: number): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.normal();
    return out;
  }
}

export function randomFor(name: string, seed: number): SeededRandom {
  return new SeededRandom(hashString(name, seed));
}

/**
 * A plausible initialisation by parameter role: norms near 1 (weights) / 0 (biases), embeddings small,
 * matrices and convs scaled by 1/sqrt(fan_in) so activations stay O(1) through deep stacks.
 */
export function initTensor(name: string, shape: number[], seed: number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const rng = randomFor(name, seed);
  const isNorm = /norm|ln_|layer_norm/.test(name);
  if (shape.length === 1) {
    if (isNorm && name.endsWith('weight')) return rng.fillNormal(out, 1, 0.05);
    return rng.fillNormal(out, 0, 0.02);
  }
  if (/embedding/.test(name)) return rng.fillNormal(out, 0, 0.1);
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  return rng.fillNormal(out, 0, 1 / Math.sqrt(fanIn));
}

export interface SyntheticOptions {
  seed?: number;
  dtype?: 'F32' | 'F16' | 'BF16';
  metadata?: Record<string, string>;
  /** Overrides the default initialisation for some tensors (e.g. schedule buffers). */
  values?: (name: string, shape: number[]) => Float32Array | undefined;
}

/** Writes a checkpoint with every key of `table`, streamed one tensor at a time. */
export function writeSyntheticCheckpoint(path: string, table: ReadonlyMap<string, readonly number[]>, opts: SyntheticOptions = {}): void {
  const seed = opts.seed ?? 0;
  const tensors: StreamedTensor[] = [...table].map(([name, shape]) => ({
    name,
    dtype: opts.dtype ?? 'F32',
    shape: [...shape],
    produce: () => opts.values?.(name, [...shape]) ?? initTensor(name, [...shape], seed),
  }));
  writeSafetensorsStreaming(path, tensors, { format: 'pt', ...opts.metadata });
}
