import { GraphBuilder, type T } from '../../graph/builder.js';
import type { WeightSet } from '../weights.js';
import { CLIP_KEYS, type ClipConfig } from './config.js';

export const CLIP_INPUT = 'input_ids';
/** Inputs of the variant that inserts textual-inversion vectors: [B, S, D] vectors and their [B, S, 1] mask. */
export const INSERTED_INPUTS = { embeds: 'inserted_embeds', mask: 'inserted_mask' } as const;
export const CLIP_OUTPUTS = {
  /** final_layer_norm(last layer) [B, S, D]: what pooled is taken from, whatever layer is selected. */
  last: 'last_hidden_state',
  /** The selected layer's output, final-LN'd unless `layerNormIntermediate` is false [B, S, D]. */
  intermediate: 'intermediate',
  embeddings: 'embeddings',
  /** HF numbering: hidden_states.i is the raw output of encoder layer i-1. */
  hidden: (i: number) => `hidden_states.${i}`,
} as const;

export interface ClipGraphOptions {
  /**
   * Layer whose output becomes `intermediate`, as ComfyUI's `intermediate_output`: negative counts from the
   * end (-1 = last, -2 = penultimate = CLIP skip 2), non-negative is a 0-based layer index. Default -1.
   */
  layerIndex?: number;
  /**
   * ComfyUI's `layer_norm_hidden_state`: SD1/SD2 apply final_layer_norm to the selected layer, SDXL's CLIP-L
   * does not.
   */
  layerNormIntermediate?: boolean;
  /** Also output the embeddings and every raw layer output (conformance checks, debugging). */
  debug?: boolean;
  /**
   * Weight names (relative to the weight set's prefix) kept as run-time inputs, so LoRA-merged values can be
   * fed per run instead of compiling a session per strength.
   */
  overridable?: ReadonlySet<string>;
  /** Take textual-inversion vectors (INSERTED_INPUTS) that replace the token lookup where the mask is 1. */
  insertedVectors?: boolean;
}

/** The token lookup, with inserted vectors in place of the masked slots when the graph takes them. */
export function tokenLookup(g: GraphBuilder, table: T, ids: T, S: number, D: number, inserted: boolean | undefined): T {
  const looked = g.gather(table, ids);
  if (!inserted) return looked;
  const vectors = g.input(INSERTED_INPUTS.embeds, 'float32', ['B', S, D]);
  const mask = g.input(INSERTED_INPUTS.mask, 'float32', ['B', S, 1]);
  return g.select(g.greater(mask, 0.5), vectors, looked);
}

type Bind = (name: string, expected: number[]) => T;

export function resolveLayerIndex(config: ClipConfig, layerIndex = -1): number {
  const n = config.numLayers;
  if (!Number.isInteger(layerIndex) || layerIndex < -n || layerIndex >= n) {
    throw new Error(`CLIP layerIndex ${layerIndex} is outside the model's ${n} layers (use -${n}..${n - 1})`);
  }
  return layerIndex < 0 ? n + layerIndex : layerIndex;
}

/**
 * The CLIP text transformer as an IR graph: input `input_ids` int32 [B, S] with S = maxPositions and a
 * symbolic batch, so one compiled session serves any number of prompts or 77-token windows. No padding
 * mask: SD1.x lets padding tokens attend (only the causal mask applies), and ComfyUI does the same.
 */
export function buildClipTextGraph(weights: WeightSet, config: ClipConfig, opts: ClipGraphOptions = {}): GraphBuilder {
  const { hiddenSize: D, maxPositions: S, vocabSize: V } = config;
  const selected = resolveLayerIndex(config, opts.layerIndex);
  const lnIntermediate = opts.layerNormIntermediate ?? true;
  const g = new GraphBuilder();
  const over = opts.overridable;
  const bind: Bind = (name, expected) => weights.bind(g, name, expected, { overridable: over?.has(name) ?? false });
  const ids = g.input(CLIP_INPUT, 'int32', ['B', S]);

  const tokenTable = bind(CLIP_KEYS.tokenEmbedding, [V, D]);
  const posTable = bind(CLIP_KEYS.positionEmbedding, [S, D]);
  let x = g.scope('embeddings', () => g.add(tokenLookup(g, tokenTable, ids, S, D, opts.insertedVectors), posTable));
  if (opts.debug) g.output(CLIP_OUTPUTS.embeddings, x);

  const finalLn = (h: T) =>
    g.scope('final_layer_norm', () =>
      g.layerNorm(
        h,
        bind(`${CLIP_KEYS.finalLayerNorm}weight`, [D]),
        bind(`${CLIP_KEYS.finalLayerNorm}bias`, [D]),
        config.layerNormEps,
      ),
    );

  let intermediate: T | undefined;
  for (let i = 0; i < config.numLayers; i++) {
    x = g.scope(`encoder.layers.${i}`, () => encoderLayer(g, bind, config, CLIP_KEYS.layer(i), x));
    if (opts.debug) g.output(CLIP_OUTPUTS.hidden(i + 1), x);
    if (i === selected) intermediate = x;
  }

  const last = finalLn(x);
  g.output(CLIP_OUTPUTS.last, last);
  const inter = intermediate!;
  g.output(CLIP_OUTPUTS.intermediate, !lnIntermediate ? inter : inter === x ? last : finalLn(inter));
  return g;
}

function encoderLayer(g: GraphBuilder, bind: Bind, c: ClipConfig, p: string, x: T): T {
  const D = c.hiddenSize;
  const ln = (name: string, h: T) => g.layerNorm(h, bind(`${p}${name}.weight`, [D]), bind(`${p}${name}.bias`, [D]), c.layerNormEps);
  const lin = (name: string, h: T, out: number, inp: number) => g.linear(h, bind(`${p}${name}.weight`, [out, inp]), bind(`${p}${name}.bias`, [out]));

  // Pre-LN block: the residual stream itself is never normalised inside the encoder.
  const h = ln('layer_norm1', x);
  const q = lin('self_attn.q_proj', h, D, D);
  const k = lin('self_attn.k_proj', h, D, D);
  const v = lin('self_attn.v_proj', h, D, D);
  const attn = g.attention(q, k, v, c.numHeads, { causal: true });
  x = g.add(x, lin('self_attn.out_proj', attn, D, D));

  const m = lin('mlp.fc1', ln('layer_norm2', x), c.intermediateSize, D);
  const act = c.activation === 'gelu' ? g.gelu(m) : g.quickGelu(m);
  return g.add(x, lin('mlp.fc2', act, D, c.intermediateSize));
}
