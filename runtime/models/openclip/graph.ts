import { GraphBuilder, type T } from '../../graph/builder.js';
import type { WeightSet } from '../weights.js';
import { CLIP_INPUT, CLIP_OUTPUTS, resolveLayerIndex, tokenLookup } from '../clip/text-encoder.js';
import { OPENCLIP_KEYS, type OpenClipConfig } from './config.js';

/** Same input/output names as the HF CLIP graph, so callers treat both towers alike. */
export const OPENCLIP_INPUT = CLIP_INPUT;
export const OPENCLIP_OUTPUTS = CLIP_OUTPUTS;

export interface OpenClipGraphOptions {
  /** Layer whose output becomes `intermediate`: negative counts from the end (-2 = penultimate). Default -1. */
  layerIndex?: number;
  /** Apply ln_final to the selected layer (SD2 does; SDXL's bigG does not). Default false. */
  layerNormIntermediate?: boolean;
  /** Also output the embeddings and every raw block output as `hidden_states.i` (HF numbering). */
  debug?: boolean;
  /** Weight names (relative to the prefix) kept as run-time inputs, for adapters merged per run. */
  overridable?: ReadonlySet<string>;
  /** Take textual-inversion vectors that replace the token lookup where their mask is 1. */
  insertedVectors?: boolean;
}

type Bind = (name: string, expected: number[]) => T;

/**
 * The OpenCLIP text transformer as an IR graph: `input_ids` int32 [B, S] (symbolic batch) to
 * `last_hidden_state` = ln_final(last block) and `intermediate`. Only the causal mask applies, padding
 * positions included, as in ComfyUI. The text projection is left to the caller: it only concerns the one
 * pooled row, not the whole sequence.
 */
export function buildOpenClipTextGraph(weights: WeightSet, config: OpenClipConfig, opts: OpenClipGraphOptions = {}): GraphBuilder {
  const { hiddenSize: D, maxPositions: S, vocabSize: V } = config;
  const selected = resolveLayerIndex(config, opts.layerIndex);
  const g = new GraphBuilder();
  const over = opts.overridable;
  const bind: Bind = (name, expected) => weights.bind(g, name, expected, { overridable: over?.has(name) ?? false });
  const ids = g.input(OPENCLIP_INPUT, 'int32', ['B', S]);

  const tokenTable = bind(OPENCLIP_KEYS.tokenEmbedding, [V, D]);
  const posTable = bind(OPENCLIP_KEYS.positionalEmbedding, [S, D]);
  let x = g.scope('embeddings', () => g.add(tokenLookup(g, tokenTable, ids, S, D, opts.insertedVectors), posTable));
  if (opts.debug) g.output(OPENCLIP_OUTPUTS.embeddings, x);

  const finalLn = (h: T) =>
    g.scope('ln_final', () =>
      g.layerNorm(h, bind(`${OPENCLIP_KEYS.finalLayerNorm}weight`, [D]), bind(`${OPENCLIP_KEYS.finalLayerNorm}bias`, [D]), config.layerNormEps),
    );

  let intermediate: T | undefined;
  for (let i = 0; i < config.numLayers; i++) {
    const p = OPENCLIP_KEYS.layer(i);
    x = g.scope(`transformer.resblocks.${i}`, () => residualBlock(g, bind, config, p, x));
    if (opts.debug) g.output(OPENCLIP_OUTPUTS.hidden(i + 1), x);
    if (i === selected) intermediate = x;
  }

  const last = finalLn(x);
  g.output(OPENCLIP_OUTPUTS.last, last);
  const inter = intermediate!;
  g.output(OPENCLIP_OUTPUTS.intermediate, !opts.layerNormIntermediate ? inter : inter === x ? last : finalLn(inter));
  return g;
}

function residualBlock(g: GraphBuilder, bind: Bind, c: OpenClipConfig, p: string, x: T): T {
  const D = c.hiddenSize;
  const ln = (name: string, h: T) => g.layerNorm(h, bind(`${p}${name}.weight`, [D]), bind(`${p}${name}.bias`, [D]), c.layerNormEps);
  const lin = (name: string, h: T, out: number, inp: number) => g.linear(h, bind(`${p}${name}.weight`, [out, inp]), bind(`${p}${name}.bias`, [out]));

  // nn.MultiheadAttention packs q, k, v as row blocks of one [3D, D] matrix: one GEMM, then split.
  const qkv = g.linear(ln('ln_1', x), bind(`${p}attn.in_proj_weight`, [3 * D, D]), bind(`${p}attn.in_proj_bias`, [3 * D]));
  const [q, k, v] = g.chunk(qkv, 3, -1) as [T, T, T];
  const attn = g.attention(q, k, v, c.numHeads, { causal: true });
  x = g.add(x, lin('attn.out_proj', attn, D, D));

  const h = lin('mlp.c_fc', ln('ln_2', x), c.intermediateSize, D);
  const act = c.activation === 'gelu' ? g.gelu(h) : g.quickGelu(h);
  return g.add(x, lin('mlp.c_proj', act, D, c.intermediateSize));
}
