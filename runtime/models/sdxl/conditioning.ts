import type { CompileOptions } from '../../graph/session.js';
import type { ClipTokenizer } from '../../text/clip-tokenizer.js';
import { tokenizeWithWeights, type ChunkToken, type TokenizeWeightsOptions } from '../../text/prompt-weights.js';
import type { EncoderEmbeddings } from '../../text/embeddings.js';
import { windowsWithVectors } from '../text-common/inserted-vectors.js';
import { ClipTextEncoder, type ClipConfig, type ClipEncoding } from '../clip/index.js';
import { OpenClipTextEncoder, type OpenClipConfig, type OpenClipEncoding } from '../openclip/index.js';
import { sdxlAdm, resolveSizes, type SdxlSizes } from './adm.js';
import type { SdxlCheckpoint } from './checkpoint.js';

/** Token windows of one encoder with their per-token weights (same layout; omitted = all 1). */
export interface TokenWindows {
  tokens: number[][];
  weights?: number[][];
  /** Textual-inversion vectors per slot (undefined for ordinary tokens); absent when there are none. */
  vectors?: (Float32Array | undefined)[][];
}

/** One resolver per encoder: CLIP-L takes a file's `clip_l` tensor, bigG its `clip_g` (see EmbeddingLibrary). */
export interface SdxlEmbeddings {
  l: EncoderEmbeddings;
  g: EncoderEmbeddings;
}

/** ComfyUI's SDXL token dict: the same prompt tokenized for each encoder, padded differently. */
export interface SdxlPromptTokens {
  l: TokenWindows;
  g: TokenWindows;
}

/** What an SDXL text encode puts on a conditioning. */
export interface SdxlTextConditioning {
  /** concat(CLIP-L, bigG) on the feature axis: [1, windows·77, Dl + Dg]. */
  context: Float32Array;
  contextShape: [1, number, number];
  /** bigG's projected pooled output [1, P]; the head of y. */
  pooled: Float32Array;
  pooledShape: [number, number];
  /** Set by CLIPTextEncodeSDXL; absent for plain text encoding (then derived from the latent). */
  sizes?: Partial<SdxlSizes>;
}

export interface SdxlEncodeDetail extends SdxlTextConditioning {
  l: ClipEncoding;
  g: OpenClipEncoding;
}

export interface SdxlTextEncoderOptions {
  /** Overrides for what shapes cannot tell (head counts of towers under 64 wide, activations). */
  clipL?: Partial<ClipConfig>;
  clipG?: Partial<OpenClipConfig>;
  compile?: CompileOptions;
}

export interface SdxlEncodeOptions {
  /** CLIPSetLastLayer(-k) on both encoders; SDXL's default is 2 (penultimate). */
  clipSkip?: number;
  /** Receives warnings about textual-inversion vectors an encoder drops. */
  onWarning?: (message: string) => void;
}

/** The encode options that carry one side's inserted vectors. */
export function vectorOptions(t: TokenWindows, opts: { onWarning?: (message: string) => void } = {}): { vectors?: (Float32Array | undefined)[][]; onWarning?: (message: string) => void } {
  if (!t.vectors) return {};
  return opts.onWarning ? { vectors: t.vectors, onWarning: opts.onWarning } : { vectors: t.vectors };
}

/** Appends empty windows to the shorter side, as CLIPTextEncodeSDXL does when text_l and text_g differ in length. */
export function equalizeWindows(tokens: SdxlPromptTokens, emptyL: number[], emptyG: number[]): SdxlPromptTokens {
  const pad = (t: TokenWindows, n: number, empty: number[]): TokenWindows => {
    const extra = n - t.tokens.length;
    if (extra <= 0) return t;
    const out: TokenWindows = { tokens: [...t.tokens, ...Array.from({ length: extra }, () => [...empty])] };
    if (t.weights) out.weights = [...t.weights, ...Array.from({ length: extra }, () => new Array<number>(empty.length).fill(1))];
    if (t.vectors) out.vectors = [...t.vectors, ...Array.from({ length: extra }, () => new Array<Float32Array | undefined>(empty.length).fill(undefined))];
    return out;
  };
  const n = Math.max(tokens.l.tokens.length, tokens.g.tokens.length);
  return { l: pad(tokens.l, n, emptyL), g: pad(tokens.g, n, emptyG) };
}

/** Splits tokenizer windows into ids, weights and the textual-inversion vectors `embeddings` resolves. */
export function windowsFromChunks(chunks: ChunkToken[][], embeddings?: EncoderEmbeddings): TokenWindows {
  return windowsWithVectors(chunks, embeddings?.vector, 'SDXL');
}

/**
 * SDXLTokenizer / CLIPTextEncodeSDXL tokenization: `textG` for bigG (padded with 0), `textL` for CLIP-L
 * (padded with the end token), 77-token windows, equal window counts. With `embeddings`, `embedding:name`
 * is looked up once per encoder (each takes its own tensor of the file, and warns on its own if missing).
 */
export function tokenizeSdxl(tok: ClipTokenizer, textG: string, textL = textG, opts: TokenizeWeightsOptions & { sdxlEmbeddings?: SdxlEmbeddings } = {}): SdxlPromptTokens {
  const { sdxlEmbeddings: emb, ...rest } = opts;
  const side = (e: EncoderEmbeddings | undefined) => (e ? { embeddings: e.lookup } : {});
  const l = windowsFromChunks(tokenizeWithWeights(tok, textL, { ...rest, ...side(emb?.l), padId: tok.endId }), emb?.l);
  const g = windowsFromChunks(tokenizeWithWeights(tok, textG, { ...rest, ...side(emb?.g), padId: 0 }), emb?.g);
  const maxLength = opts.maxLength ?? 77;
  const empty = (pad: number) => [tok.startId, tok.endId, ...new Array<number>(maxLength - 2).fill(pad)];
  return equalizeWindows({ l, g }, empty(tok.endId), empty(0));
}

/** Joins [1, S, Dl] and [1, S, Dg] along features, cut to the shorter sequence (SDXLClipModel's cut_to). */
function concatFeatures(l: Float32Array, Dl: number, g: Float32Array, Dg: number): { data: Float32Array; tokens: number } {
  const tokens = Math.min(l.length / Dl, g.length / Dg);
  const D = Dl + Dg;
  const data = new Float32Array(tokens * D);
  for (let t = 0; t < tokens; t++) {
    data.set(l.subarray(t * Dl, (t + 1) * Dl), t * D);
    data.set(g.subarray(t * Dg, (t + 1) * Dg), t * D + Dl);
  }
  return { data, tokens };
}

/**
 * SDXL's two text encoders, as ComfyUI's SDXLClipModel: CLIP-L and bigG, each the penultimate layer without
 * the final LayerNorm, each weighted against its own empty prompt; context = concat(L, G); pooled from bigG.
 */
export class SdxlTextEncoder {
  private lastLayerL: Promise<ClipTextEncoder> | undefined;
  private lastLayerG: Promise<OpenClipTextEncoder> | undefined;

  private constructor(
    readonly clipL: ClipTextEncoder,
    readonly clipG: OpenClipTextEncoder,
  ) {}

  static async load(ckpt: SdxlCheckpoint, opts: SdxlTextEncoderOptions = {}): Promise<SdxlTextEncoder> {
    const compile = opts.compile ? { compile: opts.compile } : {};
    const clipL = await ClipTextEncoder.load(ckpt.clipL, { config: opts.clipL ?? {}, layerNormIntermediate: false, ...compile });
    const clipG = await OpenClipTextEncoder.load(ckpt.clipG, { config: opts.clipG ?? {}, layerNormIntermediate: false, ...compile });
    return SdxlTextEncoder.of(clipL, clipG);
  }

  /** Pairs already loaded encoders; they must agree on the sequence length. */
  static of(clipL: ClipTextEncoder, clipG: OpenClipTextEncoder): SdxlTextEncoder {
    if (clipL.sequenceLength !== clipG.sequenceLength) {
      throw new Error(`SDXL: CLIP-L takes ${clipL.sequenceLength} tokens per window, bigG ${clipG.sequenceLength}`);
    }
    return new SdxlTextEncoder(clipL, clipG);
  }

  get contextDim(): number {
    return this.clipL.config.hiddenSize + this.clipG.config.hiddenSize;
  }

  get pooledDim(): number {
    return this.clipG.config.projectionDim ?? this.clipG.config.hiddenSize;
  }

  /** The empty prompt's tokens for both encoders. */
  emptyTokens(): SdxlPromptTokens {
    return { l: { tokens: [this.clipL.emptyWindow()] }, g: { tokens: [this.clipG.emptyWindow()] } };
  }

  /**
   * SDXLClipModel.encode_token_weights: each side encoded on its own; if their window counts differ the
   * context is cut to the shorter (tokenizeSdxl / equalizeWindows pad beforehand, as the nodes do).
   */
  async encodeTokens(tokens: SdxlPromptTokens, opts: SdxlEncodeOptions = {}): Promise<SdxlEncodeDetail> {
    const clipSkip = opts.clipSkip ?? 2;
    const [encL, encG] = await this.encodersFor(clipSkip);
    const l = await encL.encodeTokens(tokens.l.tokens, tokens.l.weights, { clipSkip, ...vectorOptions(tokens.l, opts) });
    const g = await encG.encodeTokens(tokens.g.tokens, tokens.g.weights, { clipSkip, ...vectorOptions(tokens.g, opts) });
    const Dl = this.clipL.config.hiddenSize;
    const Dg = this.clipG.config.hiddenSize;
    const ctx = concatFeatures(l.cond, Dl, g.cond, Dg);
    return { context: ctx.data, contextShape: [1, ctx.tokens, Dl + Dg], pooled: g.pooled, pooledShape: [1, g.pooled.length], l, g };
  }

  /**
   * A skip past an encoder's depth makes ComfyUI fall back to its "last" output, which is final-LN'd even
   * though SDXL's selected layers are not; a twin over the same weights with the LN on serves that case.
   */
  private async encodersFor(clipSkip: number): Promise<[ClipTextEncoder, OpenClipTextEncoder]> {
    let l = this.clipL;
    let g = this.clipG;
    if (clipSkip > l.config.numLayers) {
      this.lastLayerL ??= ClipTextEncoder.load(l.weights, { config: l.config, specialTokens: l.specialTokens, layerNormIntermediate: true });
      l = await this.lastLayerL;
    }
    if (clipSkip > g.config.numLayers) {
      this.lastLayerG ??= OpenClipTextEncoder.load(g.weights, { config: g.config, specialTokens: g.specialTokens, layerNormIntermediate: true });
      g = await this.lastLayerG;
    }
    return [l, g];
  }

  /** CLIPTextEncodeSDXL: the encoding plus explicit sizes for y. */
  async encodeWithSizes(tokens: SdxlPromptTokens, sizes: SdxlSizes, opts: SdxlEncodeOptions = {}): Promise<SdxlTextConditioning> {
    const r = await this.encodeTokens(tokens, opts);
    return { context: r.context, contextShape: r.contextShape, pooled: r.pooled, pooledShape: r.pooledShape, sizes: { ...sizes } };
  }
}

/**
 * y for one conditioning at sampling time: its own sizes, completed from the latent shape the way
 * encode_model_conds does; [rows of pooled, adm].
 */
export function conditioningAdm(cond: Pick<SdxlTextConditioning, 'pooled' | 'pooledShape' | 'sizes'>, latentShape: readonly number[], admInChannels?: number): Float32Array {
  return sdxlAdm(cond.pooled, cond.pooledShape[1], resolveSizes(cond.sizes, latentShape), admInChannels);
}
