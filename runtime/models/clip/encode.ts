import type { CompiledSession, CompileOptions, TensorData } from '../../graph/session.js';
import { LayerSessions, checkWeightWindows, emptyWindow, insertedFeeds, packWindows, pooledIndex, weightAgainstEmpty } from '../text-common/windows.js';
import { placeVectors } from '../text-common/inserted-vectors.js';
import { SafetensorsFile } from '../../safetensors/reader.js';
import { WeightSet } from '../weights.js';
import { CLIP_KEYS, SD1_SPECIAL_TOKENS, clipSkipLayer, inferClipConfig, type ClipConfig, type ClipSpecialTokens } from './config.js';
import { CLIP_INPUT, CLIP_OUTPUTS, buildClipTextGraph } from './text-encoder.js';

export interface ClipLoadOptions {
  /** Key prefix of the text model; found from the file's keys when omitted. */
  prefix?: string;
  /** Overrides for what shapes cannot tell (numHeads below 64 wide, activation, eps); checked against shapes. */
  config?: Partial<ClipConfig>;
  specialTokens?: Partial<ClipSpecialTokens>;
  /** ComfyUI's layer_norm_hidden_state (true for SD1/SD2). */
  layerNormIntermediate?: boolean;
  compile?: CompileOptions;
  /** Full checkpoint keys to keep patchable from the start (see ClipTextEncoder.addOverridable). */
  overridable?: Iterable<string>;
}

export interface ClipEncodeOptions {
  /** k of ComfyUI's CLIPSetLastLayer(-k): 1 = last layer, 2 = penultimate. Values past the depth mean last. */
  clipSkip?: number;
  /** Replacement weights (full checkpoint keys → PyTorch-layout data) for patchable keys, e.g. merged LoRAs. */
  overrides?: ReadonlyMap<string, Float32Array>;
  /**
   * Textual-inversion vectors per window slot (undefined for ordinary tokens; the slot's id is ignored), as
   * windowsWithVectors builds them. Vectors of another width are dropped with ComfyUI's warning.
   */
  vectors?: readonly (readonly (Float32Array | undefined)[])[];
  /** Receives warnings about dropped vectors; default console.warn. */
  onWarning?: (message: string) => void;
}

/** Vectors placed in a batch's first windows: [B', S, D] and [B', S] with B' <= B. */
export interface InsertedVectors {
  embeds: Float32Array;
  mask: Float32Array;
}

export interface ClipEncoding {
  /** [1, windows·S, D]: the windows' states side by side along the sequence axis. */
  cond: Float32Array;
  condDims: [1, number, number];
  /** [1, D]: final-LN state at the first end token of the first window. */
  pooled: Float32Array;
  pooledDims: [1, number];
}

/** Where text-model keys live in the layouts we meet; the first that matches wins when several do (SDXL). */
const KNOWN_PREFIXES = [
  'cond_stage_model.transformer.text_model.',
  'cond_stage_model.transformer.', // pre-4.x transformers checkpoints lack "text_model."; ComfyUI renames them
  'text_model.',
  'conditioner.embedders.0.transformer.text_model.',
];

/** Finds the prefix under which a CLIP text model's keys sit, by its token embedding. */
export function detectClipPrefix(file: SafetensorsFile): string {
  const found = file.keys().filter((k) => k.endsWith(CLIP_KEYS.tokenEmbedding)).map((k) => k.slice(0, -CLIP_KEYS.tokenEmbedding.length));
  if (found.length === 1) return found[0]!;
  const known = KNOWN_PREFIXES.find((p) => found.includes(p));
  if (known !== undefined) return known;
  if (found.length === 0) throw new Error(`${file.path}: no CLIP text encoder found (no key ending in "${CLIP_KEYS.tokenEmbedding}")`);
  throw new Error(`${file.path}: several CLIP text encoders (${found.join(', ')}); pass the prefix`);
}

/**
 * A loaded CLIP text encoder with ComfyUI's encoding semantics (SDClipModel + ClipTokenWeightEncoder):
 * windows of S token ids go through the transformer as one batch, token weights lerp away from the empty
 * prompt's states, windows are joined along the sequence axis, and pooled comes from the first window.
 */
export class ClipTextEncoder {
  private readonly sessions: LayerSessions;
  /** Weight names (relative to the prefix) fed at run time instead of baked into the session. */
  private readonly overridable = new Set<string>();

  private constructor(
    readonly weights: WeightSet,
    readonly config: ClipConfig,
    readonly specialTokens: ClipSpecialTokens,
    private readonly layerNormIntermediate: boolean,
    compileOptions: CompileOptions,
  ) {
    this.sessions = new LayerSessions(compileOptions);
  }

  static async load(source: string | SafetensorsFile | WeightSet, opts: ClipLoadOptions = {}): Promise<ClipTextEncoder> {
    let weights: WeightSet;
    if (source instanceof WeightSet) {
      weights = opts.prefix === undefined || opts.prefix === source.prefix ? source : new WeightSet(source.file, opts.prefix);
    } else {
      const file = typeof source === 'string' ? SafetensorsFile.open(source) : source;
      weights = new WeightSet(file, opts.prefix ?? detectClipPrefix(file));
    }
    const config = inferClipConfig(weights, opts.config);
    const enc = new ClipTextEncoder(weights, config, { ...SD1_SPECIAL_TOKENS, ...opts.specialTokens }, opts.layerNormIntermediate ?? true, opts.compile ?? {});
    if (opts.overridable) enc.addOverridable(opts.overridable);
    // Building binds every weight, so a missing or misshapen key fails here, not at the first prompt.
    enc.graph(config.numLayers - 1, false);
    return enc;
  }

  get sequenceLength(): number {
    return this.config.maxPositions;
  }

  private graph(layer: number, debug: boolean, insertedVectors = false) {
    return buildClipTextGraph(this.weights, this.config, {
      layerIndex: layer,
      layerNormIntermediate: this.layerNormIntermediate,
      debug,
      overridable: this.overridable,
      insertedVectors,
    });
  }

  /** The same encoder (config, special tokens, layer norm) over other weights: what a CLIP merge yields. */
  withWeights(weights: WeightSet): Promise<ClipTextEncoder> {
    return ClipTextEncoder.load(weights, { config: this.config, specialTokens: this.specialTokens, layerNormIntermediate: this.layerNormIntermediate });
  }

  /** Whether a full checkpoint key can be replaced per run without compiling a new session. */
  isPatchable(fullKey: string): boolean {
    return fullKey.startsWith(this.weights.prefix) && this.overridable.has(fullKey.slice(this.weights.prefix.length));
  }

  /**
   * Makes more weights replaceable per run (a LoRA's targets). Keys outside this encoder are refused, since
   * silently ignoring them would drop part of a patch. Sessions compiled so far are dropped: the next run
   * compiles once for the wider set, and every later strength reuses it.
   */
  addOverridable(fullKeys: Iterable<string>): void {
    let changed = false;
    for (const k of fullKeys) {
      const rel = k.slice(this.weights.prefix.length);
      if (!k.startsWith(this.weights.prefix) || !this.weights.has(rel)) {
        throw new Error(`CLIP: cannot patch "${k}": no such weight under "${this.weights.prefix}" in ${this.weights.file.path}`);
      }
      if (!this.overridable.has(rel)) {
        this.overridable.add(rel);
        changed = true;
      }
    }
    if (changed) this.sessions.clear();
  }

  /** The compiled session for a CLIP skip (symbolic batch: shared by every prompt and window count). */
  session(clipSkip = 1, debug = false, insertedVectors = false): Promise<CompiledSession> {
    const layer = clipSkipLayer(this.config, clipSkip);
    return this.sessions.get(layer, debug, () => this.graph(layer, debug, insertedVectors).graph, insertedVectors ? 'inserted' : '');
  }

  /**
   * Runs windows as one batch and returns the raw graph outputs ([B, S, D] each): `last_hidden_state`,
   * `intermediate` (the clip-skip layer) and, with `debug`, `embeddings` and `hidden_states.i`.
   */
  async run(windows: number[][], opts: ClipEncodeOptions & { debug?: boolean; inserted?: InsertedVectors } = {}): Promise<Record<string, TensorData>> {
    if (opts.overrides) this.checkOverrides(opts.overrides);
    const S = this.sequenceLength;
    const ids = packWindows(windows, S, this.config.vocabSize, 'CLIP');
    const session = await this.session(opts.clipSkip, opts.debug, Boolean(opts.inserted));
    const feeds: Record<string, TensorData> = { [CLIP_INPUT]: { data: ids, dims: [windows.length, S] } };
    if (opts.inserted) Object.assign(feeds, insertedFeeds(opts.inserted.embeds, opts.inserted.mask, windows.length, S, this.config.hiddenSize));
    return session.run(feeds, opts.overrides);
  }

  /** An override for a baked weight would be ignored by the session, so it is an error instead. */
  private checkOverrides(overrides: ReadonlyMap<string, Float32Array>): void {
    for (const k of overrides.keys()) {
      if (!this.isPatchable(k)) throw new Error(`CLIP: weight "${k}" is not patchable on this encoder; call addOverridable first`);
    }
  }

  /**
   * ComfyUI's `encode_token_weights` for one prompt. `tokens` are windows of S ids (start, ..., end, padding);
   * `weights` the per-token weights of the same layout. With any weight != 1, the empty prompt is encoded in
   * the same batch and each weighted position becomes (z - z_empty)·w + z_empty; positions whose weight is
   * exactly 1 keep z. Pooled ignores weights and clip skip (it is always from the last layer).
   */
  async encodeTokens(tokens: number[][], weights?: number[][], opts: ClipEncodeOptions = {}): Promise<ClipEncoding> {
    const S = this.sequenceLength;
    const D = this.config.hiddenSize;
    checkWeightWindows(tokens, weights, 'CLIP');
    const sections = tokens.length;
    const hasWeights = weights?.some((w) => w.some((x) => x !== 1)) ?? false;
    const { vectors, onWarning, ...runOpts } = opts;
    const placed = vectors ? placeVectors(tokens, vectors, D, this.specialTokens.pad, onWarning) : undefined;
    const batch = placed ? placed.ids : [...tokens];
    // ComfyUI encodes an empty window when there is nothing to encode, too; its length there is 0 tokens,
    // which its own model cannot take, so we use a full window.
    if (hasWeights || sections === 0) batch.push(this.emptyWindow());

    const out = await this.run(batch, placed?.any ? { ...runOpts, inserted: placed } : runOpts);
    const z = out[CLIP_OUTPUTS.intermediate]!.data as Float32Array;
    const last = out[CLIP_OUTPUTS.last]!.data as Float32Array;
    const p = this.pooledIndex(batch[0]!);
    const pooled = last.slice(p * D, (p + 1) * D);

    if (sections === 0) return this.result(z.slice(0, S * D), 1, pooled);
    const cond = z.slice(0, sections * S * D);
    if (hasWeights) weightAgainstEmpty(cond, z.subarray(sections * S * D, (sections + 1) * S * D), weights!, S, D);
    return this.result(cond, sections, pooled);
  }

  /** [start, end, pad...] as ComfyUI's gen_empty_tokens builds it. */
  emptyWindow(): number[] {
    return emptyWindow(this.specialTokens, this.sequenceLength);
  }

  /**
   * Position pooled is read from: the first end token. ComfyUI counts tokens up to and including the first
   * end token and takes the last counted, so a window without one pools its last position.
   */
  pooledIndex(window: number[]): number {
    return pooledIndex(window, this.specialTokens.end);
  }

  private result(cond: Float32Array, windows: number, pooled: Float32Array): ClipEncoding {
    const D = this.config.hiddenSize;
    return { cond, condDims: [1, windows * this.sequenceLength, D], pooled, pooledDims: [1, D] };
  }
}
