/**
 * The training loop: ORT runs the compiled forward+backward graph per micro-batch, TypeScript accumulates
 * the gradients, clips them and applies AdamW. All state lives in `TrainingState`, which a checkpoint
 * stores bit-exactly, and all randomness comes from the batch source's per-step generators, so a resumed
 * run reproduces an uninterrupted one.
 */
import type { TensorData } from '../graph/session.js';
import { compileGraph } from '../graph/session.js';
import { SegmentedGradient, type SegmentedOptions } from '../graph/segmented-session.js';
import type { Graph } from '../graph/ir.js';
import type { UnetConfig } from '../models/unet/config.js';
import type { WeightSet } from '../models/weights.js';
import { adamwStep, clipGradients, emptyAdamState, learningRate, type AdamWOptions } from './adamw.js';
import type { BatchSource, MicroBatch } from './batches.js';
import { initParams, type AdapterLayout, type ParamGroup } from './params.js';
import { saveTrainingState, type Settings, type TrainingState } from './state.js';
import { buildLossGraph, buildTrainingGraph, unetBlocks } from './train-graph.js';

/** What computes a micro-batch's loss and gradients: one gradient session, or the UNet block by block. */
export interface GradientRunner {
  run(feeds: Record<string, TensorData>): Promise<Record<string, TensorData>>;
}

export interface TrainerModel {
  weights: WeightSet;
  config: UnetConfig;
  /** ᾱ_t of the noise schedule (ModelSampling.alphasCumprod). */
  alphasCumprod: Float64Array;
  /** Full checkpoint key → weight the model uses instead of the file's (adapters already applied). */
  overrides?: ReadonlyMap<string, Float32Array>;
}

export interface TrainerSettings {
  /** Samples per optimiser step. */
  batchSize: number;
  /** Samples per forward/backward run; gradients of ceil(batch/micro) runs are accumulated. */
  microBatch: number;
  adamw: AdamWOptions;
  warmupSteps: number;
  /** Max global gradient L2 norm; 0 disables clipping. */
  gradClip: number;
  seed: number;
  /**
   * Checkpointed training: the UNet runs block by block and each block's activations are recomputed for its
   * backward, so only one block's activations are ever alive (segmented-session.ts). Same gradients, about
   * one more forward pass per step.
   */
  recompute: boolean;
  threads?: number;
  /** The norms' learning rate as a multiple of the LoRA's (default 1): replacement norms act on every resolution, the base's too. */
  normLrScale?: number;
}

export interface StepMetrics {
  /** Steps done (1-based after the first step). */
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  samplesPerSecond: number;
  seconds: number;
  /** Of `seconds`: forward + backward runs, and gradient accumulation + clipping + AdamW. */
  runSeconds: number;
  optimizerSeconds: number;
  resolution: number;
  bucket: string;
  normsUpdated: boolean;
}

export interface RunOptions {
  signal?: AbortSignal;
  /** May be async (it is awaited); an error it throws once `signal` has aborted counts as the interrupt. */
  onStep?: (m: StepMetrics) => void | Promise<void>;
  /** Write a checkpoint every `every` steps, at the end and when interrupted. */
  checkpoint?: { path: string; every: number };
}

export class TrainingDivergedError extends Error {
  constructor(step: number, loss: number) {
    super(`training diverged at step ${step + 1}: the loss is ${loss}; lower the learning rate or enable gradient clipping`);
    this.name = 'TrainingDivergedError';
  }
}

/** The settings a checkpoint records; a resume with other values no longer follows the original trajectory. */
export function settingsRecord(s: TrainerSettings): Settings {
  const { adamw, ...rest } = s;
  const out: Settings = { ...adamw, batchSize: rest.batchSize, warmupSteps: rest.warmupSteps, gradClip: rest.gradClip, seed: rest.seed };
  return out;
}

function segmented(forward: Graph, opts: Omit<SegmentedOptions, 'blockOf'>): Promise<SegmentedGradient> {
  return SegmentedGradient.create(forward, { ...opts, blockOf: unetBlocks(forward) });
}

export class ResAdapterTrainer {
  /** The accumulated (and clipped) gradients of the last step, for inspection. */
  lastGrads: ReadonlyMap<string, Float32Array> | undefined;

  private constructor(
    readonly layout: AdapterLayout,
    readonly session: GradientRunner,
    private readonly model: TrainerModel,
    readonly settings: TrainerSettings,
    readonly state: TrainingState,
  ) {}

  /** Compiles the training graph and starts from `resume` or from fresh parameters (LoRA up = 0, norms = the model's). */
  static async create(model: TrainerModel, layout: AdapterLayout, settings: TrainerSettings, resume?: TrainingState): Promise<ResAdapterTrainer> {
    if (!(settings.batchSize >= 1 && settings.microBatch >= 1)) throw new Error('batch size and micro-batch must be at least 1');
    const graphOpts = model.overrides ? { overrides: model.overrides } : {};
    const session: GradientRunner = settings.recompute
      ? await segmented(buildLossGraph(model.weights, model.config, layout, graphOpts), {
          loss: 'loss',
          wrt: layout.params.map((p) => p.name),
          role: 'training',
          ...(settings.threads ? { threads: settings.threads } : {}),
        })
      : await compileGraph(buildTrainingGraph(model.weights, model.config, layout, graphOpts), { role: 'training', ...(settings.threads ? { threads: settings.threads } : {}) });
    const base = (key: string) => model.overrides?.get(model.weights.prefix + key) ?? model.weights.read(key);
    const state: TrainingState = resume ?? {
      step: 0,
      params: initParams(layout, base, settings.seed),
      adam: emptyAdamState(layout.params),
      history: [],
      settings: settingsRecord(settings),
    };
    return new ResAdapterTrainer(layout, session, model, settings, state);
  }

  get step(): number {
    return this.state.step;
  }

  /** The UNet input for a micro-batch: x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε, with the roots rounded to float32. */
  noisy(mb: MicroBatch): Float32Array {
    const [n, c, h, w] = mb.dims;
    const plane = c * h * w;
    const x = new Float32Array(n * plane);
    for (let i = 0; i < n; i++) {
      const acp = this.model.alphasCumprod[mb.timesteps[i]!]!;
      // The DDPM forward process; equals ComfyUI's c_in·(x0 + σ·ε) for the same timestep.
      const a = Math.fround(Math.sqrt(acp));
      const b = Math.fround(Math.sqrt(1 - acp));
      for (let j = i * plane; j < (i + 1) * plane; j++) x[j] = a * mb.x0[j]! + b * mb.noise[j]!;
    }
    return x;
  }

  private feeds(mb: MicroBatch): Record<string, TensorData> {
    const n = mb.dims[0];
    const x = this.noisy(mb);
    const feeds: Record<string, TensorData> = {
      x: { data: x, dims: mb.dims },
      timesteps: { data: mb.timesteps, dims: [n] },
      context: { data: mb.context, dims: mb.contextDims },
      target: { data: mb.target ?? mb.noise, dims: mb.dims },
    };
    const adm = this.model.config.admInChannels;
    if (adm) {
      if (!mb.y || !mb.yDims) throw new Error(`this UNet takes a ${adm}-wide label vector (y), the batch has none: encode the dataset with the model's own CLIP`);
      if (mb.yDims[1] !== adm) throw new Error(`the batch's y is ${mb.yDims[1]} wide, this UNet takes ${adm}`);
      feeds.y = { data: mb.y, dims: mb.yDims };
    }
    for (const p of this.layout.params) feeds[p.name] = { data: this.state.params.get(p.name)!, dims: p.shape };
    return feeds;
  }

  /** Loss and gradients of one micro-batch at the current parameters. */
  async lossAndGrads(mb: MicroBatch): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
    const out = await this.session.run(this.feeds(mb));
    const grads = new Map(this.layout.params.map((p) => [p.name, out[`grad/${p.name}`]!.data as Float32Array]));
    return { loss: (out.loss!.data as Float32Array)[0]!, grads };
  }

  async evaluate(mb: MicroBatch): Promise<number> {
    return (await this.lossAndGrads(mb)).loss;
  }

  /** One optimiser step on the source's batch for the current step. */
  async trainStep(source: BatchSource): Promise<StepMetrics> {
    const t0 = performance.now();
    const s = this.settings;
    const step = this.state.step;
    const batch = await source.batch(step, s.batchSize);
    let loss = 0;
    let grads: Map<string, Float32Array> | undefined;
    let runMs = 0;
    let optMs = 0;
    for (let start = 0; start < batch.size; start += s.microBatch) {
      const end = Math.min(batch.size, start + s.microBatch);
      const mb = await batch.load(start, end);
      const tRun = performance.now();
      const r = await this.lossAndGrads(mb);
      const tAcc = performance.now();
      runMs += tAcc - tRun;
      // Each run's loss is a mean over its samples: weight by share of the batch to get the batch mean.
      const share = (end - start) / batch.size;
      loss += r.loss * share;
      if (!grads) {
        grads = r.grads;
        if (share !== 1) for (const g of grads.values()) for (let i = 0; i < g.length; i++) g[i] = g[i]! * share;
      } else {
        for (const [name, g] of r.grads) {
          const acc = grads.get(name)!;
          for (let i = 0; i < g.length; i++) acc[i] = acc[i]! + g[i]! * share;
        }
      }
      optMs += performance.now() - tAcc;
    }
    if (!Number.isFinite(loss)) throw new TrainingDivergedError(step, loss);
    const tOpt = performance.now();
    const groups: ParamGroup[] = batch.aboveBase ? ['lora', 'norm'] : ['lora'];
    const updated = this.layout.params.filter((p) => groups.includes(p.group));
    const gradNorm = clipGradients(
      updated.map((p) => grads!.get(p.name)!),
      s.gradClip,
    );
    const lr = learningRate(s.adamw.lr, s.warmupSteps, step);
    this.lastGrads = grads;
    for (const g of groups) adamwStep(this.layout.params, this.state.params, grads!, this.state.adam, g, g === 'norm' ? lr * (s.normLrScale ?? 1) : lr, s.adamw);
    optMs += performance.now() - tOpt;
    this.state.step = step + 1;
    this.state.history.push([step + 1, loss]);
    const seconds = (performance.now() - t0) / 1000;
    return {
      step: step + 1,
      loss,
      lr,
      gradNorm,
      samplesPerSecond: batch.size / seconds,
      seconds,
      runSeconds: runMs / 1000,
      optimizerSeconds: optMs / 1000,
      resolution: batch.resolution,
      bucket: batch.label,
      normsUpdated: batch.aboveBase,
    };
  }

  /** Trains until `steps` steps are done or `signal` aborts; an abort takes effect after the step in flight. */
  async run(source: BatchSource, steps: number, o: RunOptions = {}): Promise<'done' | 'interrupted'> {
    const save = () => {
      if (o.checkpoint) saveTrainingState(o.checkpoint.path, this.layout, this.state);
    };
    while (this.state.step < steps) {
      if (o.signal?.aborted) {
        save();
        return 'interrupted';
      }
      const m = await this.trainStep(source);
      if (o.signal?.aborted) {
        save();
        return 'interrupted';
      }
      if (o.checkpoint && o.checkpoint.every > 0 && m.step % o.checkpoint.every === 0 && m.step < steps) save();
      try {
        await o.onStep?.(m);
      } catch (e) {
        if (!o.signal?.aborted) throw e;
        save();
        return 'interrupted';
      }
    }
    save();
    return 'done';
  }
}
