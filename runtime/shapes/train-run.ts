/**
 * `npm run train:shapes`: trains ResFlow Shapes from a seed in three resumable phases, all state under one
 * folder: (1) the VAE on rendered scenes, (2) a cache of 128² latents (rescaled to unit variance in SD1's
 * model space) and of the frozen text encoder's caption embeddings, (3) the UNet on eps-prediction at 128²
 * only. Every phase saves atomically every few minutes and at its end; rerunning the same command resumes.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileGraph } from '../graph/session.js';
import { openSd1Checkpoint } from '../models/checkpoint.js';
import { ClipTextEncoder } from '../models/clip/index.js';
import { inferUnetConfig } from '../models/unet/config.js';
import { inferVaeConfig } from '../models/vae/config.js';
import { buildEncoderGraph } from '../models/vae/graph.js';
import { WeightSet } from '../models/weights.js';
import { SafetensorsFile } from '../safetensors/index.js';
import { writeSafetensors, type TensorToWrite } from '../safetensors/writer.js';
import { ModelSampling, SD15_LATENT_FORMAT } from '../sampling/model-sampling.js';
import { fitPreviewFactors, PREVIEW_FACTORS_KEY } from '../sampling/preview-factors.js';
import { ClipTokenizer } from '../text/index.js';
import { tokenizeWithWeights } from '../text/prompt-weights.js';
import { RECIPE_ADAMW } from '../training/adamw.js';
import { SHAPES_BASE, SHAPES_OFFSET_NOISE } from './arch.js';
import { toPlanar, unetBatch, vaeBatch, type LatentCache } from './batches.js';
import { COLOUR_NAMES, renderScene, sampleScene, sceneCaption, SHAPE_KINDS } from './dataset.js';
import { FullTrainer, loadFullState, saveFullState, type FullTrainerOptions } from './full-trainer.js';
import { buildUnetLossGraph, buildVaeLossGraph } from './losses.js';
import { exportCheckpoint, writeInitialCheckpoint, writeShapesTokenizer } from './model-files.js';

export interface ShapesTrainConfig {
  seed: number;
  vaeSteps: number;
  vaeBatch: number;
  vaeCrop: number;
  vaeLr: number;
  klWeight: number;
  latents: number;
  unetSteps: number;
  unetBatch: number;
  unetLr: number;
  captionDropout: number;
  /** Standard deviation of the per-image, per-channel constant added to the UNet's training noise (see `unetBatch`). */
  offsetNoise: number;
  /** Phase 4: the decoder alone, on the frozen (rescaled) encoder's latents; 0 skips it. */
  decoderSteps: number;
  decoderLr: number;
  /** EMA decay of the UNet weights; the export uses the average. */
  unetEma: number;
  /** Seconds between checkpoints. */
  saveEvery: number;
  threads?: number;
}

export const DEFAULT_TRAIN_CONFIG: ShapesTrainConfig = {
  seed: 20251204,
  vaeSteps: 300,
  vaeBatch: 8,
  vaeCrop: 64,
  vaeLr: 1e-3,
  klWeight: 1e-4,
  latents: 2048,
  unetSteps: 12000,
  unetBatch: 16,
  unetLr: 1e-3,
  captionDropout: 0.1,
  offsetNoise: SHAPES_OFFSET_NOISE,
  unetEma: 0.995,
  decoderSteps: 400,
  decoderLr: 5e-4,
  saveEvery: 180,
};

export interface Progress {
  phase: string;
  step: number;
  total: number;
  loss: number;
  secondsPerStep: number;
  detail?: string;
}

export interface TrainHooks {
  onProgress?: (p: Progress) => void;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

const LATENT_SIDE = SHAPES_BASE / 8;

export class ShapesTraining {
  readonly init: string;
  readonly tokenizerDir: string;
  readonly vaeState: string;
  readonly vaeFinal: string;
  readonly cacheFile: string;
  readonly unetState: string;
  readonly rawMeans: string;
  readonly decoderState: string;

  constructor(
    readonly dir: string,
    readonly cfg: ShapesTrainConfig,
    private readonly hooks: TrainHooks = {},
  ) {
    this.init = join(dir, 'init.safetensors');
    this.tokenizerDir = join(dir, 'tokenizer');
    this.vaeState = join(dir, 'vae-state.safetensors');
    this.vaeFinal = join(dir, 'vae.safetensors');
    this.cacheFile = join(dir, 'latents.safetensors');
    this.unetState = join(dir, 'unet-state.safetensors');
    this.rawMeans = join(dir, 'vae-raw-means.safetensors');
    this.decoderState = join(dir, 'decoder-state.safetensors');
  }

  private log(s: string): void {
    this.hooks.log?.(s);
  }

  prepare(): void {
    mkdirSync(this.dir, { recursive: true });
    const configFile = join(this.dir, 'config.json');
    const text = JSON.stringify(this.cfg, null, 2);
    if (existsSync(configFile) && readFileSync(configFile, 'utf8') !== text) {
      this.log(`note: ${configFile} differs from this run's settings; the trajectory continues with the new ones`);
    }
    writeFileSync(configFile, text);
    if (!existsSync(this.init)) writeInitialCheckpoint(this.init, this.cfg.seed);
    writeShapesTokenizer(this.tokenizerDir);
  }

  private options(lr: number, total: number, warmup: number, emaDecay = 0): FullTrainerOptions {
    return {
      emaDecay,
      adamw: { ...RECIPE_ADAMW, lr, beta1: 0.9, beta2: 0.99, weightDecay: 0 },
      schedule: { lr, warmupSteps: warmup, totalSteps: total, finalFactor: 0.05 },
      gradClip: 1,
      ...(this.cfg.threads ? { threads: this.cfg.threads } : {}),
    };
  }

  private async loop(phase: string, trainer: FullTrainer, total: number, statePath: string, batch: (step: number) => Record<string, import('../graph/session.js').TensorData>): Promise<boolean> {
    let lastSave = performance.now();
    let ema = NaN;
    const save = () => saveFullState(statePath, trainer.specs, trainer.state, { phase });
    while (trainer.state.step < total) {
      if (this.hooks.signal?.aborted) {
        save();
        return false;
      }
      const t0 = performance.now();
      const r = await trainer.step(batch(trainer.state.step));
      ema = Number.isNaN(ema) ? r.loss : 0.98 * ema + 0.02 * r.loss;
      this.hooks.onProgress?.({ phase, step: r.step, total, loss: ema, secondsPerStep: (performance.now() - t0) / 1000, detail: `lr ${r.lr.toExponential(2)} |g| ${r.gradNorm.toFixed(3)}` });
      if ((performance.now() - lastSave) / 1000 >= this.cfg.saveEvery) {
        save();
        lastSave = performance.now();
      }
    }
    save();
    return true;
  }

  /** Phase 1: the VAE. Writes vae.safetensors (rescaled, see `finishVae`) when done. */
  async trainVae(): Promise<boolean> {
    if (existsSync(this.vaeFinal)) return true;
    const file = SafetensorsFile.open(this.init);
    const ws = new WeightSet(file, 'first_stage_model.');
    const cfg = inferVaeConfig(ws);
    const resume = loadFullState(this.vaeState)?.state;
    const trainer = await FullTrainer.create(buildVaeLossGraph(ws, cfg, this.cfg.klWeight), this.options(this.cfg.vaeLr, this.cfg.vaeSteps, 100), undefined, resume);
    if (resume) this.log(`resuming the VAE at step ${resume.step}`);
    const c = this.cfg;
    const done = await this.loop('vae', trainer, c.vaeSteps, this.vaeState, (step) => {
      const b = vaeBatch(c.seed, step, c.vaeBatch, c.vaeCrop);
      return { image: { data: b.image, dims: b.dims }, noise: { data: b.noise, dims: [c.vaeBatch, 4, c.vaeCrop / 8, c.vaeCrop / 8] } };
    });
    if (!done) return false;
    await this.finishVae(trainer.state.params);
    return true;
  }

  /**
   * Encodes the latent-cache scenes with the trained encoder, then folds a per-channel shift and one
   * scale into quant_conv / post_quant_conv (exact: both are 1×1 linear maps) so the posterior means,
   * times SD1's 0.18215, have zero mean and unit variance: the noise schedule then fits the latents.
   */
  private async finishVae(params: ReadonlyMap<string, Float32Array>): Promise<void> {
    const tensors: Record<string, TensorToWrite> = {};
    for (const [k, v] of params) tensors[k] = { dtype: 'F32', shape: SafetensorsFile.open(this.init).info(k).shape, data: v };
    const raw = join(this.dir, 'vae-raw.safetensors');
    writeSafetensors(raw, tensors);
    const means = await this.encodeCacheScenes(raw);
    writeSafetensors(this.rawMeans, { means: { dtype: 'F32', shape: [means.length], data: means } });
    const zc = 4;
    const plane = LATENT_SIDE * LATENT_SIDE;
    const mu = new Float64Array(zc);
    const n = this.cfg.latents;
    for (let i = 0; i < n; i++) for (let c = 0; c < zc; c++) for (let p = 0; p < plane; p++) mu[c]! += means[(i * zc + c) * plane + p]! / (n * plane);
    let sq = 0;
    for (let i = 0; i < n; i++) for (let c = 0; c < zc; c++) for (let p = 0; p < plane; p++) sq += (means[(i * zc + c) * plane + p]! - mu[c]!) ** 2;
    const std = Math.sqrt(sq / (n * zc * plane));
    const s = 1 / (std * SD15_LATENT_FORMAT.scaleFactor);
    const out = new Map([...params].map(([k, v]) => [k, v.slice()]));
    const qw = out.get('first_stage_model.quant_conv.weight')!; // [2zc, 2zc, 1, 1]
    const qb = out.get('first_stage_model.quant_conv.bias')!;
    for (let o = 0; o < zc; o++) {
      for (let i = 0; i < 2 * zc; i++) qw[o * 2 * zc + i] = qw[o * 2 * zc + i]! * s;
      qb[o] = (qb[o]! - mu[o]!) * s;
      qb[zc + o] = qb[zc + o]! + 2 * Math.log(s);
    }
    const pw = out.get('first_stage_model.post_quant_conv.weight')!; // [zc, zc, 1, 1]
    const pb = out.get('first_stage_model.post_quant_conv.bias')!;
    for (let o = 0; o < zc; o++) {
      let shift = 0;
      for (let i = 0; i < zc; i++) {
        shift += pw[o * zc + i]! * mu[i]!;
        pw[o * zc + i] = pw[o * zc + i]! / s;
      }
      pb[o] = pb[o]! + shift;
    }
    const final: Record<string, TensorToWrite> = {};
    for (const [k, v] of out) final[k] = { dtype: 'F32', shape: tensors[k]!.shape, data: v };
    writeSafetensors(this.vaeFinal, final, {
      'resflow.shapes.latent_scale': String(s),
      'resflow.shapes.latent_std': String(std),
      'resflow.shapes.latent_mean': JSON.stringify([...mu]),
    });
    this.log(`VAE latents: std ${std.toFixed(4)}, mean [${[...mu].map((m) => m.toFixed(3)).join(', ')}] → scale ${s.toFixed(4)}`);
  }

  /** Posterior means [n, 4, 16, 16] of the first `latents` pool scenes at 128², encoded with the VAE in `path`. */
  private async encodeCacheScenes(path: string): Promise<Float32Array> {
    const ws = new WeightSet(SafetensorsFile.open(path), 'first_stage_model.');
    const cfg = inferVaeConfig(ws);
    const session = await compileGraph(buildEncoderGraph(ws, cfg), this.cfg.threads ? { threads: this.cfg.threads } : {});
    const n = this.cfg.latents;
    const plane = LATENT_SIDE * LATENT_SIDE;
    const out = new Float32Array(n * 4 * plane);
    const chunk = 16;
    const px = SHAPES_BASE * SHAPES_BASE;
    for (let start = 0; start < n; start += chunk) {
      const end = Math.min(n, start + chunk);
      const image = new Float32Array((end - start) * 3 * px);
      for (let i = start; i < end; i++) toPlanar(renderScene(sampleScene(this.cfg.seed, i), SHAPES_BASE, SHAPES_BASE), SHAPES_BASE, SHAPES_BASE, image, (i - start) * 3 * px);
      const r = await session.run({ image: { data: image, dims: [end - start, 3, SHAPES_BASE, SHAPES_BASE] } });
      const m = r.moments!.data as Float32Array;
      for (let b = 0; b < end - start; b++) out.set(m.subarray(b * 8 * plane, b * 8 * plane + 4 * plane), (start + b) * 4 * plane);
      this.hooks.onProgress?.({ phase: 'encode', step: end, total: n, loss: NaN, secondsPerStep: 0 });
    }
    return out;
  }

  /** Phase 2: model-space latents of the pool's first scenes and the caption embeddings. */
  async buildCache(): Promise<LatentCache> {
    if (!existsSync(this.cacheFile)) {
      const latents = await this.cacheMeans();
      for (let i = 0; i < latents.length; i++) latents[i] = latents[i]! * SD15_LATENT_FORMAT.scaleFactor;
      const captions: string[] = [''];
      for (const shape of SHAPE_KINDS) for (const c of COLOUR_NAMES) for (const bg of COLOUR_NAMES) if (c !== bg) captions.push(sceneCaption({ shape, colour: c, background: bg, gradient: 0, cx: 0.5, cy: 0.5, size: 0.5 }));
      const index = new Map(captions.map((c, i) => [c, i]));
      const ids = Int32Array.from({ length: this.cfg.latents }, (_, i) => index.get(sceneCaption(sampleScene(this.cfg.seed, i)))!);
      const contexts = await this.encodeCaptions(captions);
      writeSafetensors(this.cacheFile, {
        latents: { dtype: 'F32', shape: [this.cfg.latents, 4, LATENT_SIDE, LATENT_SIDE], data: latents },
        captions: { dtype: 'F32', shape: [this.cfg.latents], data: Float32Array.from(ids) },
        contexts: { dtype: 'F32', shape: [captions.length, contexts.length / captions.length], data: contexts },
      }, { captions: JSON.stringify(captions) });
    }
    const f = SafetensorsFile.open(this.cacheFile);
    const latents = f.readFloat32('latents');
    const contexts = f.readFloat32('contexts');
    const count = f.info('latents').shape[0]!;
    return {
      latents,
      captions: Int32Array.from(f.readFloat32('captions')),
      contexts,
      count,
      plane: latents.length / count,
      contextSize: f.info('contexts').shape[1]!,
    };
  }

  /**
   * The rescaled VAE's posterior means of the cache scenes: the raw encoder's, mapped through the folded
   * shift and scale (the same affine map quant_conv now applies), else encoded again.
   */
  private async cacheMeans(): Promise<Float32Array> {
    if (!existsSync(this.rawMeans)) return this.encodeCacheScenes(this.vaeFinal);
    const meta = SafetensorsFile.open(this.vaeFinal).metadata;
    const s = Number(meta['resflow.shapes.latent_scale']);
    const mu = JSON.parse(meta['resflow.shapes.latent_mean'] ?? '[]') as number[];
    const raw = SafetensorsFile.open(this.rawMeans).readFloat32('means');
    const plane = LATENT_SIDE * LATENT_SIDE;
    return raw.map((v, i) => Math.fround((v - mu[Math.floor(i / plane) % 4]!) * s));
  }

  /** What CLIPTextEncode gives for each caption with this checkpoint's tokenizer and frozen text encoder. */
  private async encodeCaptions(captions: string[]): Promise<Float32Array> {
    const ck = openSd1Checkpoint(this.init);
    const tokenizer = ClipTokenizer.fromFolder(this.tokenizerDir, { cleanup: 'basic' });
    const clip = await ClipTextEncoder.load(ck.clip, { specialTokens: { start: tokenizer.startId, end: tokenizer.endId, pad: tokenizer.padId } });
    const rows: Float32Array[] = [];
    for (const text of captions) {
      const windows = tokenizeWithWeights(tokenizer, text);
      const r = await clip.encodeTokens(
        windows.map((w) => w.map((t) => ('id' in t ? t.id : tokenizer.endId))),
        windows.map((w) => w.map((t) => t.weight)),
      );
      if (r.condDims[1] !== 77) throw new Error(`caption "${text}" encodes to ${r.condDims[1]} tokens, expected one 77-token window`);
      rows.push(r.cond);
    }
    const out = new Float32Array(rows.length * rows[0]!.length);
    rows.forEach((r, i) => out.set(r, i * r.length));
    return out;
  }

  /** Phase 3: the UNet, eps-prediction at 128² only, with caption dropout for classifier-free guidance. */
  async trainUnet(cache: LatentCache): Promise<boolean> {
    const ck = openSd1Checkpoint(this.init);
    const cfg = inferUnetConfig(ck.unet, {}, ck.file.metadata);
    const resume = loadFullState(this.unetState)?.state;
    if (resume) this.log(`resuming the UNet at step ${resume.step}`);
    const trainer = await FullTrainer.create(buildUnetLossGraph(ck.unet, cfg), this.options(this.cfg.unetLr, this.cfg.unetSteps, 200, this.cfg.unetEma), undefined, resume);
    const acp = new ModelSampling().alphasCumprod;
    const c = this.cfg;
    return this.loop('unet', trainer, c.unetSteps, this.unetState, (step) => {
      const b = unetBatch(cache, acp, c.seed, step, c.unetBatch, c.captionDropout, LATENT_SIDE, c.offsetNoise);
      return {
        x: { data: b.x, dims: b.dims },
        timesteps: { data: b.timesteps, dims: [b.dims[0]] },
        context: { data: b.context, dims: b.contextDims },
        target: { data: b.target, dims: b.dims },
      };
    });
  }

  /**
   * Phase 4: more decoder training with the encoder frozen. The latent space the UNet learned stays exactly
   * as it was (encoder, quant_conv and the latent scale are untouched), so this can run beside or after the
   * UNet phase and only sharpens what the decoder makes of the same latents.
   */
  async trainDecoder(): Promise<boolean> {
    if (!existsSync(this.vaeFinal)) throw new Error(`the decoder phase needs the trained VAE (${this.vaeFinal})`);
    const ws = new WeightSet(SafetensorsFile.open(this.vaeFinal), 'first_stage_model.');
    const cfg = inferVaeConfig(ws);
    const resume = loadFullState(this.decoderState)?.state;
    if (resume) this.log(`resuming the decoder at step ${resume.step}`);
    const pick = (name: string) => name.startsWith('first_stage_model.decoder.') || name.startsWith('first_stage_model.post_quant_conv.');
    const c = this.cfg;
    const trainer = await FullTrainer.create(buildVaeLossGraph(ws, cfg, 0), this.options(c.decoderLr, c.decoderSteps, 20), pick, resume);
    // Another scene stream than the VAE phase's (seed + 1), so the decoder sees new pictures.
    return this.loop('decoder', trainer, c.decoderSteps, this.decoderState, (step) => {
      const b = vaeBatch(c.seed + 1, step, c.vaeBatch, c.vaeCrop);
      return { image: { data: b.image, dims: b.dims }, noise: { data: b.noise, dims: [c.vaeBatch, 4, c.vaeCrop / 8, c.vaeCrop / 8] } };
    });
  }

  /**
   * The sampler's live preview colours for this VAE: a least-squares map from the cached latents to their scenes,
   * pooled to latent resolution (SD1.5's built-in map shows this model in false colours).
   */
  private previewMetadata(): Record<string, string> {
    if (!existsSync(this.cacheFile)) return {};
    const f = SafetensorsFile.open(this.cacheFile);
    const [total, channels, side] = f.info('latents').shape as [number, number, number];
    const n = Math.min(total, 256);
    const plane = side * side;
    const latents = f.readFloat32('latents').subarray(0, n * channels * plane);
    const images = new Float32Array(n * 3 * plane);
    const px = SHAPES_BASE / side;
    for (let i = 0; i < n; i++) {
      const rgb = renderScene(sampleScene(this.cfg.seed, i), SHAPES_BASE, SHAPES_BASE);
      for (let c = 0; c < 3; c++) {
        for (let y = 0; y < side; y++) {
          for (let x = 0; x < side; x++) {
            let sum = 0;
            for (let dy = 0; dy < px; dy++) for (let dx = 0; dx < px; dx++) sum += rgb[((y * px + dy) * SHAPES_BASE + x * px + dx) * 3 + c]!;
            images[(i * 3 + c) * plane + y * side + x] = (2 * sum) / (255 * px * px) - 1;
          }
        }
      }
    }
    return { [PREVIEW_FACTORS_KEY]: JSON.stringify(fitPreviewFactors(latents, images, n, channels)) };
  }

  /** Writes the F16 checkpoint from the latest states (the UNet's may be mid-training). */
  exportTo(path: string): { unetStep: number } {
    const trained = new Map<string, Float32Array>();
    if (!existsSync(this.vaeFinal)) throw new Error(`no trained VAE yet (${this.vaeFinal}); run the training first`);
    const vae = SafetensorsFile.open(this.vaeFinal);
    for (const k of vae.keys()) trained.set(k, vae.readFloat32(k));
    const decoder = loadFullState(this.decoderState);
    if (decoder) for (const [k, v] of decoder.state.params) trained.set(k, v);
    const unet = loadFullState(this.unetState);
    if (!unet) throw new Error(`no UNet training state yet (${this.unetState})`);
    for (const [k, v] of unet.state.ema ?? unet.state.params) trained.set(k, v);
    mkdirSync(join(path, '..'), { recursive: true });
    const tmp = `${path}.export-${process.pid}`;
    exportCheckpoint(tmp, SafetensorsFile.open(this.init), trained, {
      'resflow.shapes.seed': String(this.cfg.seed),
      'resflow.shapes.unet_steps': String(unet.state.step),
      'resflow.shapes.decoder_steps': String(decoder?.state.step ?? 0),
      'resflow.shapes.vae_latent_scale': vae.metadata['resflow.shapes.latent_scale'] ?? '',
      ...this.previewMetadata(),
    });
    renameSync(tmp, path);
    return { unetStep: unet.state.step };
  }
}
