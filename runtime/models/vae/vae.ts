import type { Graph } from '../../graph/ir.js';
import { compileGraph, releaseSession, type CompiledSession, type CompileOptions, type TensorData } from '../../graph/session.js';
import type { Precision } from '../../graph/precision.js';
import { SafetensorsFile } from '../../safetensors/reader.js';
import { WeightSet } from '../weights.js';
import { detectVaePrefix, inferVaeConfig, type VaeConfig } from './config.js';
import { buildDecoderGraph, buildEncoderGraph } from './graph.js';
import { tiledScaleAveraged, type Nchw } from './tiled.js';

/** ComfyUI IMAGE layout: [B, H, W, C] float32 in [0, 1]. */
export interface ImageBatch {
  data: Float32Array;
  shape: [number, number, number, number];
}

/** Latents are NCHW [B, C, h, w] in the VAE's own (unscaled) space. */
export type LatentBatch = Nchw;

export interface Posterior {
  /** quant_conv output: concat(mean, logvar) along channels. */
  moments: Nchw;
  mean: Nchw;
  /** Clamped to [-30, 20] like DiagonalGaussianDistribution; absent for single-z encoders. */
  logvar?: Nchw;
}

export interface VaeLoadOptions {
  /** Key prefix of the VAE tensors; detected when omitted ("first_stage_model." or "" for standalone files). */
  prefix?: string;
  /** Latent scale the sampler applies (process_latent_in/out); SD1.x 0.18215, SDXL 0.13025. */
  scaleFactor?: number;
  compile?: CompileOptions;
}

export interface VaeTileOptions {
  /** Tile edge in image pixels (ComfyUI default 512). */
  tileSize?: number;
  /** Overlap in image pixels (ComfyUI default 64); clamped to tileSize/4 as the ComfyUI nodes do. */
  overlap?: number;
  /** 3 averages tall, wide and square tilings like ComfyUI; 1 runs the square tiling only (3x faster). */
  passes?: 1 | 3;
}

export const SD1_SCALE_FACTOR = 0.18215;

/**
 * An AutoencoderKL whose architecture is read from the file. Graphs are built at load (so a missing or
 * mis-shaped tensor fails immediately, naming its key) and compiled on first use; compiled sessions take
 * any batch and size.
 */
export class Vae {
  private decoderSession?: Promise<CompiledSession>;
  private encoderSession?: Promise<CompiledSession>;
  private debugSession?: Promise<CompiledSession>;

  private constructor(
    readonly weights: WeightSet,
    readonly config: VaeConfig,
    readonly scaleFactor: number,
    private readonly decoderGraph: Graph,
    private readonly encoderGraph: Graph | undefined,
    private readonly compileOptions: CompileOptions,
  ) {}

  static async load(file: string | SafetensorsFile, opts: VaeLoadOptions = {}): Promise<Vae> {
    const st = typeof file === 'string' ? SafetensorsFile.open(file) : file;
    const ws = new WeightSet(st, opts.prefix ?? detectVaePrefix(st));
    const cfg = inferVaeConfig(ws);
    const decoder = buildDecoderGraph(ws, cfg);
    const encoder = cfg.hasEncoder ? buildEncoderGraph(ws, cfg) : undefined;
    return new Vae(ws, cfg, opts.scaleFactor ?? SD1_SCALE_FACTOR, decoder, encoder, opts.compile ?? {});
  }

  /** The same VAE (weights and graphs shared) compiling its sessions at `precision` (a loader's weight_dtype). */
  withPrecision(precision: Precision): Vae {
    return new Vae(this.weights, this.config, this.scaleFactor, this.decoderGraph, this.encoderGraph, { ...this.compileOptions, precision });
  }

  /** Image pixels per latent pixel (8 for SD VAEs). */
  get downscale(): number {
    return this.config.downscale;
  }

  get latentChannels(): number {
    return this.config.embedDim;
  }

  /** post_quant_conv + decoder: NCHW, roughly [-1, 1], not clamped. */
  async decodeRaw(latent: LatentBatch): Promise<Nchw> {
    this.checkLatent(latent);
    this.decoderSession ??= compileGraph(this.decoderGraph, { role: 'vae', ...this.compileOptions });
    const out = await (await this.decoderSession).run({ z: { data: latent.data, dims: latent.shape } });
    return asNchw(out.raw!);
  }

  /** ComfyUI VAEDecode: clamp((raw + 1) / 2, 0, 1) as NHWC. */
  async decode(latent: LatentBatch): Promise<ImageBatch> {
    return rawToImage(await this.decodeRaw(latent));
  }

  async decodeTiled(latent: LatentBatch, opts: VaeTileOptions = {}): Promise<ImageBatch> {
    this.checkLatent(latent);
    const { tile, overlap, passes } = tileParams(opts);
    const f = this.downscale;
    const t = Math.floor(tile / f);
    const ov = Math.floor(overlap / f);
    const shapes: Array<[number, number]> = passes === 1 ? [[t, t]] : [[t * 2, Math.floor(t / 2)], [Math.floor(t / 2), t * 2], [t, t]];
    const raw = await tiledScaleAveraged(latent, (z) => this.decodeRaw(z), shapes, { overlap: ov, scale: f, outChannels: this.config.outChannels });
    return rawToImage(raw);
  }

  /** ComfyUI VAEEncode: the posterior mode (= mean), unscaled. */
  async encode(image: ImageBatch): Promise<LatentBatch> {
    return (await this.encodeMoments(image)).mean;
  }

  async encodeMoments(image: ImageBatch): Promise<Posterior> {
    return this.splitMoments(await this.runEncoder(this.toEncoderInput(image)));
  }

  async encodeTiled(image: ImageBatch, opts: VaeTileOptions = {}): Promise<LatentBatch> {
    const { tile, overlap, passes } = tileParams(opts);
    const half = Math.floor(tile / 2);
    const shapes: Array<[number, number]> = passes === 1 ? [[tile, tile]] : [[tile, tile], [half, tile * 2], [tile * 2, half]];
    const fn = async (x: Nchw) => this.splitMoments(await this.runEncoder(x)).mean;
    return tiledScaleAveraged(this.toEncoderInput(image), fn, shapes, { overlap, scale: 1 / this.downscale, outChannels: this.latentChannels });
  }

  /** Decoder module outputs keyed by state-dict path (post_quant_conv, decoder.mid.attn_1, ...), for debugging. */
  async decodeIntermediates(latent: LatentBatch): Promise<Record<string, Nchw>> {
    this.checkLatent(latent);
    this.debugSession ??= compileGraph(buildDecoderGraph(this.weights, this.config, { intermediates: true }), { role: 'vae', ...this.compileOptions });
    const out = await (await this.debugSession).run({ z: { data: latent.data, dims: latent.shape } });
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k.replace(/^intermediate\//, ''), asNchw(v)]));
  }

  /**
   * Drops the compiled sessions; the Vae compiles again on next use. Sessions are shared per process by graph
   * hash, so another Vae loaded from the same file loses its session too and must not be mid-run.
   */
  async dispose(): Promise<void> {
    const sessions = [this.decoderSession, this.encoderSession, this.debugSession];
    this.decoderSession = this.encoderSession = this.debugSession = undefined;
    for (const s of sessions) if (s) await releaseSession((await s).hash);
  }

  private async runEncoder(x: Nchw): Promise<Nchw> {
    if (!this.encoderGraph) throw new Error(`${this.weights.file.path}: this VAE has no encoder (no "${this.weights.prefix}encoder.conv_in.weight")`);
    this.encoderSession ??= compileGraph(this.encoderGraph, { role: 'vae', ...this.compileOptions });
    const out = await (await this.encoderSession).run({ image: { data: x.data, dims: x.shape } });
    return asNchw(out.moments!);
  }

  private splitMoments(moments: Nchw): Posterior {
    if (!this.config.doubleZ) return { moments, mean: moments };
    const [B, C2, h, w] = moments.shape;
    const C = C2 / 2;
    const plane = C * h * w;
    const mean = new Float32Array(B * plane);
    const logvar = new Float32Array(B * plane);
    for (let b = 0; b < B; b++) {
      mean.set(moments.data.subarray(2 * b * plane, (2 * b + 1) * plane), b * plane);
      const lv = moments.data.subarray((2 * b + 1) * plane, (2 * b + 2) * plane);
      for (let i = 0; i < plane; i++) logvar[b * plane + i] = Math.min(Math.max(lv[i]!, -30), 20);
    }
    return { moments, mean: { data: mean, shape: [B, C, h, w] }, logvar: { data: logvar, shape: [B, C, h, w] } };
  }

  /**
   * NHWC [0,1] -> NCHW, keeping the first inChannels channels (RGBA inputs drop alpha) and center-cropping
   * to a multiple of the downscale factor, as ComfyUI's vae_encode_crop_pixels does.
   */
  private toEncoderInput(image: ImageBatch): Nchw {
    const [B, H, W, Cin] = image.shape;
    const C = this.config.inChannels;
    if (image.data.length !== B * H * W * Cin) throw new Error(`image data has ${image.data.length} values, shape [${image.shape.join(', ')}] needs ${B * H * W * Cin}`);
    if (Cin < C) throw new Error(`image has ${Cin} channels, the VAE encoder needs ${C}`);
    const f = this.downscale;
    const h = Math.floor(H / f) * f;
    const w = Math.floor(W / f) * f;
    if (h === 0 || w === 0) throw new Error(`image ${H}x${W} is smaller than the VAE's downscale factor ${f}`);
    const y0 = Math.floor((H % f) / 2);
    const x0 = Math.floor((W % f) / 2);
    const out = new Float32Array(B * C * h * w);
    for (let b = 0; b < B; b++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const src = ((b * H + y + y0) * W + x + x0) * Cin;
          for (let c = 0; c < C; c++) out[((b * C + c) * h + y) * w + x] = image.data[src + c]!;
        }
      }
    }
    return { data: out, shape: [B, C, h, w] };
  }

  private checkLatent(latent: LatentBatch): void {
    const [B, C, h, w] = latent.shape;
    if (latent.shape.length !== 4 || C !== this.latentChannels) {
      throw new Error(`latent shape [${latent.shape.join(', ')}] does not fit this VAE: expected [B, ${this.latentChannels}, h, w]`);
    }
    if (latent.data.length !== B * C * h * w) throw new Error(`latent data has ${latent.data.length} values, shape [${latent.shape.join(', ')}] needs ${B * C * h * w}`);
  }
}

function asNchw(t: TensorData): Nchw {
  if (!(t.data instanceof Float32Array) || t.dims.length !== 4) throw new Error(`expected a float32 rank-4 tensor, got dims [${t.dims.join(', ')}]`);
  return { data: t.data, shape: [t.dims[0]!, t.dims[1]!, t.dims[2]!, t.dims[3]!] };
}

/** float32 (raw + 1) / 2 clamped to [0, 1], NCHW -> NHWC (ComfyUI process_output + movedim). */
export function rawToImage(raw: Nchw): ImageBatch {
  const [B, C, H, W] = raw.shape;
  const out = new Float32Array(B * H * W * C);
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      const src = (b * C + c) * H * W;
      for (let i = 0; i < H * W; i++) {
        const v = Math.fround(raw.data[src + i]! + 1) / 2;
        out[(b * H * W + i) * C + c] = v < 0 ? 0 : v > 1 ? 1 : v;
      }
    }
  }
  return { data: out, shape: [B, H, W, C] };
}

function tileParams(opts: VaeTileOptions): { tile: number; overlap: number; passes: 1 | 3 } {
  const tile = opts.tileSize ?? 512;
  let overlap = opts.overlap ?? 64;
  if (tile < overlap * 4) overlap = Math.floor(tile / 4);
  if (!(tile > 0) || overlap < 0) throw new Error(`invalid tile size ${tile} / overlap ${overlap}`);
  return { tile, overlap, passes: opts.passes ?? 3 };
}
