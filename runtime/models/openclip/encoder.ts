import type { CompiledSession, CompileOptions, TensorData } from '../../graph/session.js';
import { LayerSessions, checkWeightWindows, emptyWindow, insertedFeeds, packWindows, pooledIndex, weightAgainstEmpty } from '../text-common/windows.js';
import { placeVectors } from '../text-common/inserted-vectors.js';
import type { InsertedVectors } from '../clip/encode.js';
import { SafetensorsFile } from '../../safetensors/reader.js';
import { clipSkipLayer, type ClipSpecialTokens } from '../clip/config.js';
import { WeightSet } from '../weights.js';
import { OPENCLIP_KEYS, inferOpenClipConfig, type OpenClipConfig } from './config.js';
import { OPENCLIP_INPUT, OPENCLIP_OUTPUTS, buildOpenClipTextGraph } from './graph.js';

/** ComfyUI's bigG tokenizer pads with 0, not with the end token (SDXLClipGTokenizer, pad_with_end=False). */
export const OPENCLIP_SPECIAL_TOKENS: ClipSpecialTokens = { start: 49406, end: 49407, pad: 0 };

/** Where the tower sits in the checkpoint layouts we know. */
const KNOWN_PREFIXES = ['conditioner.embedders.1.model.', 'cond_stage_model.model.', 'conditioner.embedders.0.model.', ''];

export interface OpenClipLoadOptions {
  prefix?: string;
  /** What shapes cannot tell (numHeads for towers under 64 wide, activation, eps); checked against shapes. */
  config?: Partial<OpenClipConfig>;
  specialTokens?: Partial<ClipSpecialTokens>;
  /** ln_final on the selected layer: false for SDXL (default), true for SD2. */
  layerNormIntermediate?: boolean;
  compile?: CompileOptions;
}

export interface OpenClipEncodeOptions {
  /** k of CLIPSetLastLayer(-k): 1 = last block, 2 = penultimate (SDXL's default). */
  clipSkip?: number;
  /** Merged weights (full checkpoint keys) replacing baked ones for this run; each must be patchable. */
  overrides?: ReadonlyMap<string, Float32Array>;
  /** Textual-inversion vectors per window slot (see ClipEncodeOptions.vectors); mismatched widths are dropped. */
  vectors?: readonly (readonly (Float32Array | undefined)[])[];
  onWarning?: (message: string) => void;
}

export interface OpenClipEncoding {
  /** [1, windows·S, D]: selected-layer states of the windows, side by side. */
  cond: Float32Array;
  condDims: [1, number, number];
  /** ln_final(last block) at the first end token of the first window, times text_projection: [1, proj]. */
  pooled: Float32Array;
  pooledDims: [1, number];
  /** The same row before the projection: [1, D]. */
  pooledUnprojected: Float32Array;
}

/** Finds the OpenCLIP text tower in a file by its packed attention key. */
export function detectOpenClipPrefix(file: SafetensorsFile): string {
  const probe = `${OPENCLIP_KEYS.layer(0)}attn.in_proj_weight`;
  const found = file.keys().filter((k) => k.endsWith(probe) && !k.includes('visual.')).map((k) => k.slice(0, -probe.length));
  if (found.length === 1) return found[0]!;
  const known = KNOWN_PREFIXES.find((p) => found.includes(p));
  if (known !== undefined) return known;
  if (found.length === 0) throw new Error(`${file.path}: no OpenCLIP text tower found (no key ending in "${probe}")`);
  throw new Error(`${file.path}: several OpenCLIP text towers (${found.join(', ')}); pass the prefix`);
}

/**
 * A loaded OpenCLIP text tower with ComfyUI's SDClipModel semantics: windows run as one batch, token
 * weights lerp from the empty prompt, pooled is projected (SDXL's `return_projected_pooled`).
 */
export class OpenClipTextEncoder {
  private readonly sessions: LayerSessions;
  private projection: Float32Array | undefined;
  private readonly overridable = new Set<string>();

  private constructor(
    readonly weights: WeightSet,
    readonly config: OpenClipConfig,
    readonly specialTokens: ClipSpecialTokens,
    private readonly layerNormIntermediate: boolean,
    compileOptions: CompileOptions,
  ) {
    this.sessions = new LayerSessions(compileOptions);
  }

  static async load(source: string | SafetensorsFile | WeightSet, opts: OpenClipLoadOptions = {}): Promise<OpenClipTextEncoder> {
    let weights: WeightSet;
    if (source instanceof WeightSet) {
      weights = opts.prefix === undefined || opts.prefix === source.prefix ? source : new WeightSet(source.file, opts.prefix);
    } else {
      const file = typeof source === 'string' ? SafetensorsFile.open(source) : source;
      weights = new WeightSet(file, opts.prefix ?? detectOpenClipPrefix(file));
    }
    const config = inferOpenClipConfig(weights, opts.config);
    const enc = new OpenClipTextEncoder(weights, config, { ...OPENCLIP_SPECIAL_TOKENS, ...opts.specialTokens }, opts.layerNormIntermediate ?? false, opts.compile ?? {});
    // Building binds every weight, so a missing or misshapen key fails here, naming it.
    enc.graph(config.numLayers - 1, false);
    return enc;
  }

  get sequenceLength(): number {
    return this.config.maxPositions;
  }

  private graph(layer: number, debug: boolean, insertedVectors = false) {
    return buildOpenClipTextGraph(this.weights, this.config, { layerIndex: layer, layerNormIntermediate: this.layerNormIntermediate, debug, overridable: this.overridable, insertedVectors });
  }

  /** The same encoder (config, special tokens, layer norm) over other weights: what a CLIP merge yields. */
  withWeights(weights: WeightSet): Promise<OpenClipTextEncoder> {
    return OpenClipTextEncoder.load(weights, { config: this.config, specialTokens: this.specialTokens, layerNormIntermediate: this.layerNormIntermediate });
  }

  /** Whether a full checkpoint key can be replaced per run without compiling a new session. */
  isPatchable(fullKey: string): boolean {
    return fullKey.startsWith(this.weights.prefix) && this.overridable.has(fullKey.slice(this.weights.prefix.length));
  }

  /** Makes more weights replaceable per run (a LoRA's targets); sessions compiled so far are dropped. */
  addOverridable(fullKeys: Iterable<string>): void {
    let changed = false;
    for (const k of fullKeys) {
      const rel = k.slice(this.weights.prefix.length);
      if (!k.startsWith(this.weights.prefix) || !this.weights.has(rel)) {
        throw new Error(`OpenCLIP: cannot patch "${k}": no such weight under "${this.weights.prefix}" in ${this.weights.file.path}`);
      }
      if (!this.overridable.has(rel)) {
        this.overridable.add(rel);
        changed = true;
      }
    }
    if (changed) this.sessions.clear();
  }

  session(clipSkip = 1, debug = false, insertedVectors = false): Promise<CompiledSession> {
    const layer = clipSkipLayer(this.config, clipSkip);
    return this.sessions.get(layer, debug, () => this.graph(layer, debug, insertedVectors).graph, insertedVectors ? 'inserted' : '');
  }

  /** Raw graph outputs for windows of S ids: `last_hidden_state`, `intermediate`, and with debug the per-block states. */
  async run(windows: number[][], opts: OpenClipEncodeOptions & { debug?: boolean; inserted?: InsertedVectors } = {}): Promise<Record<string, TensorData>> {
    const S = this.sequenceLength;
    const ids = packWindows(windows, S, this.config.vocabSize, 'OpenCLIP');
    for (const k of opts.overrides?.keys() ?? []) {
      if (!this.isPatchable(k)) throw new Error(`OpenCLIP: weight "${k}" is not patchable on this encoder; call addOverridable first`);
    }
    const session = await this.session(opts.clipSkip ?? 1, opts.debug ?? false, Boolean(opts.inserted));
    const feeds: Record<string, TensorData> = { [OPENCLIP_INPUT]: { data: ids, dims: [windows.length, S] } };
    if (opts.inserted) Object.assign(feeds, insertedFeeds(opts.inserted.embeds, opts.inserted.mask, windows.length, S, this.config.hiddenSize));
    return session.run(feeds, opts.overrides);
  }

  /** h @ text_projection for one pooled row; the row itself when the file has no projection. */
  project(row: Float32Array): Float32Array {
    const P = this.config.projectionDim;
    if (P === null) return Float32Array.from(row);
    this.projection ??= this.weights.read(OPENCLIP_KEYS.textProjection);
    const D = this.config.hiddenSize;
    const out = new Float32Array(P);
    for (let j = 0; j < P; j++) {
      let s = 0;
      for (let i = 0; i < D; i++) s += row[i]! * this.projection[i * P + j]!;
      out[j] = s;
    }
    return out;
  }

  /**
   * encode_token_weights for one prompt: `tokens` are windows of S ids, `weights` the matching per-token
   * weights. With any weight != 1 the empty prompt joins the batch. Pooled ignores weights and clip skip.
   */
  async encodeTokens(tokens: number[][], weights?: number[][], opts: OpenClipEncodeOptions = {}): Promise<OpenClipEncoding> {
    const S = this.sequenceLength;
    const D = this.config.hiddenSize;
    checkWeightWindows(tokens, weights, 'OpenCLIP');
    const sections = tokens.length;
    const hasWeights = weights?.some((w) => w.some((x) => x !== 1)) ?? false;
    const placed = opts.vectors ? placeVectors(tokens, opts.vectors, D, this.specialTokens.pad, opts.onWarning) : undefined;
    const batch = placed ? placed.ids : [...tokens];
    if (hasWeights || sections === 0) batch.push(this.emptyWindow());

    const out = await this.run(batch, { clipSkip: opts.clipSkip ?? 2, ...(opts.overrides ? { overrides: opts.overrides } : {}), ...(placed?.any ? { inserted: placed } : {}) });
    const z = out[OPENCLIP_OUTPUTS.intermediate]!.data as Float32Array;
    const last = out[OPENCLIP_OUTPUTS.last]!.data as Float32Array;
    const p = this.pooledIndex(batch[0]!);
    const pooledUnprojected = last.slice(p * D, (p + 1) * D);
    const pooled = this.project(pooledUnprojected);
    const n = Math.max(sections, 1);
    const cond = z.slice(0, n * S * D);
    if (hasWeights) weightAgainstEmpty(cond, z.subarray(sections * S * D, (sections + 1) * S * D), weights!, S, D);
    return { cond, condDims: [1, n * S, D], pooled, pooledDims: [1, pooled.length], pooledUnprojected };
  }

  /** [start, end, pad...] as gen_empty_tokens builds it (bigG: end then zeros). */
  emptyWindow(): number[] {
    return emptyWindow(this.specialTokens, this.sequenceLength);
  }

  /** The first end token; ComfyUI pools the last position of a window that has none. */
  pooledIndex(window: number[]): number {
    return pooledIndex(window, this.specialTokens.end);
  }
}
