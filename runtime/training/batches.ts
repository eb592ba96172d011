/**
 * What one optimiser step trains on. Every draw of step k (resolution, bucket, images, timesteps, noise)
 * comes from a generator seeded by (seed, k) alone, so a resumed run sees exactly the batches an
 * uninterrupted one would, with no sampler state to save; and the whole batch is drawn before it is split
 * into micro-batches, so gradient accumulation changes memory, not the data.
 */
import { drawInt, drawWeighted, stepGenerator } from './buckets.js';
import type { ScannedDataset } from './dataset.js';
import type { EncodeCache } from './encode-cache.js';

export interface MicroBatch {
  /** Clean latents in model space, [n, C, h, w]. */
  x0: Float32Array;
  noise: Float32Array;
  /**
   * What the UNet should output; the noise when absent (epsilon prediction). Fixed targets let tests fit a
   * known-reachable function, e.g. another adapter's predictions.
   */
  target?: Float32Array;
  /** Integer DDPM timesteps in [0, T). */
  timesteps: Float32Array;
  context: Float32Array;
  dims: [number, number, number, number];
  contextDims: [number, number, number];
  /** The UNet's label vector (SDXL's y), [n, A], for families whose UNet takes one. */
  y?: Float32Array;
  yDims?: [number, number];
}

export interface StepBatch {
  size: number;
  /** The training resolution of the batch (side of the equal-area square, in pixels). */
  resolution: number;
  /** Whether the GroupNorms learn from this batch (the recipe: only above the base resolution). */
  aboveBase: boolean;
  label: string;
  load(start: number, end: number): Promise<MicroBatch>;
}

export interface BatchSource {
  batch(step: number, size: number): Promise<StepBatch>;
}

export interface DatasetSourceOptions {
  seed: number;
  numTimesteps: number;
  /** VAE latent → model space (SD1.x: × 0.18215). */
  toModel: (latent: Float32Array) => Float32Array;
  /**
   * One sample's y row from its caption's pooled embedding and the bucket's pixel size, for UNets with a
   * label input (SDXL); absent for SD1.x.
   */
  labelVector?: (pooled: Float32Array | undefined, size: { width: number; height: number }) => Float32Array;
  /**
   * Standard deviation of a per-image, per-channel constant added to the noise ("offset noise"); 0 = none. An
   * adapter should see the noise its base model was trained with (ResFlow Shapes: 0.3).
   */
  offsetNoise?: number;
}

/** Adds `std` × one draw per (image, channel) to every element of that plane, in place. */
export function addOffsetNoise(noise: Float32Array, images: number, channels: number, std: number, gen: { randn(n: number): Float32Array }): Float32Array {
  if (!(std > 0)) return noise;
  const area = noise.length / (images * channels);
  const offsets = gen.randn(images * channels);
  for (let ic = 0; ic < images * channels; ic++) {
    const o = Math.fround(std * offsets[ic]!);
    for (let i = ic * area; i < (ic + 1) * area; i++) noise[i] = noise[i]! + o;
  }
  return noise;
}

const TEXT_TOKENS = 77;

/** The first 77-token window: contexts of one batch must share a length, and longer captions are rare. */
function firstWindow(data: Float32Array, dims: number[]): { data: Float32Array; s: number; d: number } {
  const [, s, d] = dims as [number, number, number];
  if (s <= TEXT_TOKENS) return { data, s, d };
  return { data: data.subarray(0, TEXT_TOKENS * d), s: TEXT_TOKENS, d };
}

export class DatasetBatchSource implements BatchSource {
  constructor(
    private readonly dataset: ScannedDataset,
    private readonly cache: EncodeCache,
    private readonly o: DatasetSourceOptions,
  ) {}

  async batch(step: number, size: number): Promise<StepBatch> {
    const d = this.dataset;
    const gen = stepGenerator(this.o.seed, step);
    const resolution = d.resolutions[drawWeighted(gen, d.weights)]!;
    const candidates = d.buckets.flatMap((b, k) => (b.resolution === resolution && d.pools[k]!.length ? [k] : []));
    const bucketIndex = candidates[drawWeighted(gen, candidates.map((k) => d.pools[k]!.length))]!;
    const bucket = d.buckets[bucketIndex]!;
    const pool = d.pools[bucketIndex]!;
    // With replacement: a bucket may hold fewer images than a batch, and stateless draws keep resume exact.
    const picks = Array.from({ length: size }, () => pool[drawInt(gen, pool.length)]!);
    const timesteps = Float32Array.from({ length: size }, () => drawInt(gen, this.o.numTimesteps));
    const noiseGen = stepGenerator(this.o.seed, step, 1);
    const offsetGen = stepGenerator(this.o.seed, step, 3);
    const withOffset = (n: Float32Array, channels: number) => addOffsetNoise(n, size, channels, this.o.offsetNoise ?? 0, offsetGen);
    let noise: Float32Array | undefined;
    return {
      size,
      resolution,
      aboveBase: resolution > d.baseResolution,
      label: `${bucket.width}×${bucket.height}`,
      load: async (start, end) => {
        // Drawn once for the whole batch at its first use, then sliced: the split cannot change the noise.
        const noiseFor = (plane: number, channels: number) => (noise ??= withOffset(noiseGen.randn(size * plane), channels)).slice(start * plane, end * plane);
        return this.assemble(picks.slice(start, end), bucket, timesteps.slice(start, end), noiseFor);
      },
    };
  }

  /**
   * A fixed batch per training resolution, the same at every call: `n` images of the resolution's most
   * populated bucket, timesteps spread evenly over the schedule and noise from the seed. Its loss moves only
   * when the adapter does, so a curve of it shows training progress the per-step loss hides under the
   * timestep-to-timestep spread.
   */
  async fixedBatches(n: number): Promise<Array<{ label: string; batch: MicroBatch }>> {
    const d = this.dataset;
    const out: Array<{ label: string; batch: MicroBatch }> = [];
    for (const resolution of d.resolutions) {
      const ks = d.buckets.flatMap((b, k) => (b.resolution === resolution && d.pools[k]!.length ? [k] : []));
      const k = ks.reduce((a, b) => (d.pools[b]!.length > d.pools[a]!.length ? b : a));
      const bucket = d.buckets[k]!;
      const pool = d.pools[k]!;
      const gen = stepGenerator(this.o.seed, resolution, 2);
      const offsetGen = stepGenerator(this.o.seed, resolution, 4);
      const picks = Array.from({ length: n }, (_, i) => pool[i % pool.length]!);
      const timesteps = Float32Array.from({ length: n }, (_, i) => Math.floor(((i + 0.5) * this.o.numTimesteps) / n));
      const noiseFor = (plane: number, channels: number) => addOffsetNoise(gen.randn(n * plane), n, channels, this.o.offsetNoise ?? 0, offsetGen);
      out.push({ label: `${bucket.width}×${bucket.height}`, batch: await this.assemble(picks, bucket, timesteps, noiseFor) });
    }
    return out;
  }

  /** The micro-batch of `picks`; `noiseFor(plane, channels)` gives its noise once the latent size is known. */
  private async assemble(picks: number[], bucket: ScannedDataset['buckets'][number], timesteps: Float32Array, noiseFor: (plane: number, channels: number) => Float32Array): Promise<MicroBatch> {
    const items = picks.map((k) => this.dataset.items[k]!);
    const latents = [];
    for (const it of items) latents.push(await this.cache.latent(it, bucket));
    const [, c, h, w] = latents[0]!.dims as [number, number, number, number];
    const plane = c * h * w;
    const x0 = new Float32Array(items.length * plane);
    latents.forEach((l, i) => x0.set(this.o.toModel(l.data), i * plane));
    const texts = [];
    const pooled: Array<Float32Array | undefined> = [];
    for (const it of items) {
      const t = await this.cache.text(it.caption);
      texts.push(firstWindow(t.data, t.dims));
      pooled.push(t.pooled);
    }
    const { s, d: width } = texts[0]!;
    if (texts.some((t) => t.s !== s)) throw new Error(`captions of one batch encode to different lengths (${texts.map((t) => t.s).join(', ')})`);
    const context = new Float32Array(items.length * s * width);
    texts.forEach((t, i) => context.set(t.data, i * s * width));
    const mb: MicroBatch = { x0, noise: noiseFor(plane, c), timesteps, context, dims: [items.length, c, h, w], contextDims: [items.length, s, width] };
    if (this.o.labelVector) {
      const rows = pooled.map((p) => this.o.labelVector!(p, bucket));
      const a = rows[0]!.length;
      mb.y = new Float32Array(items.length * a);
      rows.forEach((r, i) => mb.y!.set(r, i * a));
      mb.yDims = [items.length, a];
    }
    return mb;
  }
}

/** The same micro-batch every step: overfitting checks and benches. */
export class FixedBatchSource implements BatchSource {
  constructor(
    private readonly micro: MicroBatch,
    private readonly aboveBase = true,
  ) {}

  async batch(_step: number, size: number): Promise<StepBatch> {
    const n = this.micro.dims[0];
    if (size !== n) throw new Error(`fixed batch holds ${n} samples, the trainer asked for ${size}`);
    const m = this.micro;
    const plane = m.dims[1] * m.dims[2] * m.dims[3];
    const ctx = m.contextDims[1] * m.contextDims[2];
    return {
      size,
      resolution: m.dims[2] * 8,
      aboveBase: this.aboveBase,
      label: `${m.dims[3]}×${m.dims[2]} latent`,
      load: async (start, end) => ({
        x0: m.x0.slice(start * plane, end * plane),
        noise: m.noise.slice(start * plane, end * plane),
        ...(m.target ? { target: m.target.slice(start * plane, end * plane) } : {}),
        ...(m.y && m.yDims ? { y: m.y.slice(start * m.yDims[1], end * m.yDims[1]), yDims: [end - start, m.yDims[1]] as [number, number] } : {}),
        timesteps: m.timesteps.slice(start, end),
        context: m.context.slice(start * ctx, end * ctx),
        dims: [end - start, m.dims[1], m.dims[2], m.dims[3]],
        contextDims: [end - start, m.contextDims[1], m.contextDims[2]],
      }),
    };
  }
}
