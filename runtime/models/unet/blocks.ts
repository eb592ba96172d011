import type { GraphBuilder, T } from '../../graph/builder.js';
import type { WeightSet } from '../weights.js';

/**
 * Building blocks shared by the UNet and ControlNet (LDM openaimodel / attention semantics as in ComfyUI).
 * `bind` returns a graph weight for a key under the model prefix.
 */
export interface BlockContext {
  g: GraphBuilder;
  w: WeightSet;
  /** Keys whose weights must stay replaceable at run time (adapters); see WeightSet.bind. */
  overridable: (key: string) => boolean;
  groups: number;
  /**
   * Lets a caller replace a bound weight by an expression of the same shape (training: W + LoRA product
   * over trainable graph inputs, or a trainable input outright) without the blocks knowing about it.
   */
  weightHook?: (name: string, t: T) => T;
  /**
   * Lets a caller add to a conv's output (training: a LoRA branch conv(x, down) → 1×1 up beside the frozen
   * conv, so the base weight stays a constant the runtime can prepack). `name` is the module, e.g. `input_blocks.3.0.op`.
   */
  convHook?: ConvHook;
  /**
   * Replaces a transformer block's self-attention (UNet patches such as HyperTile). Gets the normed input, the
   * module name (`....attn1`) and head count; returns undefined to keep the plain attention.
   */
  selfAttention?: (n1: T, name: string, heads: number) => T | undefined;
  /** Rewrites the key and value inputs of every attention before their projections (hypernetworks). */
  kvHook?: (k: T, v: T) => { k: T; v: T };
}

export type ConvHook = (name: string, x: T, y: T, o: { stride: number; padding: number }) => T;

export function bind(c: BlockContext, name: string, expected?: Array<number | null>): T {
  const t = c.w.bind(c.g, name, expected, { overridable: c.overridable(name) });
  return c.weightHook ? c.weightHook(name, t) : t;
}

/** Convs are checked against the architecture (kernel size, input channels) so a mis-shaped file names its key. */
function conv(c: BlockContext, x: T, name: string, opts: { stride?: number; padding?: number; kernel?: number } = {}): T {
  const inCh = typeof x.shape[1] === 'number' ? x.shape[1] : null;
  const k = opts.kernel ?? (/(proj_in|proj_out|skip_connection)$/.test(name) ? 1 : 3);
  const w = bind(c, `${name}.weight`, [null, inCh, k, k]);
  const b = c.w.has(`${name}.bias`) ? bind(c, `${name}.bias`, [w.shape[0] as number]) : undefined;
  const o = { stride: opts.stride ?? 1, padding: opts.padding ?? (k - 1) / 2 };
  const y = c.g.conv2d(x, w, b, o);
  return c.convHook ? c.convHook(name, x, y, o) : y;
}

function linear(c: BlockContext, x: T, name: string): T {
  const w = bind(c, `${name}.weight`);
  const b = c.w.has(`${name}.bias`) ? bind(c, `${name}.bias`) : undefined;
  return c.g.linear(x, w, b);
}

function groupNorm(c: BlockContext, x: T, name: string, eps: number): T {
  const ch = typeof x.shape[1] === 'number' ? x.shape[1] : null;
  return c.g.groupNorm(x, c.groups, bind(c, `${name}.weight`, [ch]), bind(c, `${name}.bias`, [ch]), eps);
}

function layerNorm(c: BlockContext, x: T, name: string): T {
  return c.g.layerNorm(x, bind(c, `${name}.weight`), bind(c, `${name}.bias`), 1e-5);
}

/** Sinusoidal timestep embedding, [cos, sin] order as LDM's timestep_embedding (flip_sin_to_cos). */
export function timestepEmbedding(g: GraphBuilder, t: T, dim: number, maxPeriod = 10000): T {
  const half = Math.floor(dim / 2);
  const freqs = new Float32Array(half);
  for (let i = 0; i < half; i++) freqs[i] = Math.fround(Math.exp(Math.fround((-Math.log(maxPeriod) * i) / half)));
  const args = g.mul(g.reshape(t, [-1, 1]), g.constant(freqs, [1, half]));
  const emb = g.concat([g.cos(args), g.sin(args)], 1);
  if (dim % 2) throw new Error('odd timestep embedding width is not supported');
  return emb;
}

/** time_embed: Linear → SiLU → Linear. */
export function timeEmbed(c: BlockContext, emb: T, prefix = 'time_embed'): T {
  return linear(c, c.g.silu(linear(c, emb, `${prefix}.0`)), `${prefix}.2`);
}

/** LDM ResBlock: GN → SiLU → conv, + emb, GN → SiLU → conv, + skip. `embAct` is SiLU(emb), shared by all blocks. */
export function resBlock(c: BlockContext, x: T, embAct: T, name: string): T {
  const { g } = c;
  return g.scope(name, () => {
    let h = conv(c, g.silu(groupNorm(c, x, `${name}.in_layers.0`, 1e-5)), `${name}.in_layers.2`);
    const e = linear(c, embAct, `${name}.emb_layers.1`);
    h = g.add(h, g.reshape(e, [0, -1, 1, 1]));
    h = conv(c, g.silu(groupNorm(c, h, `${name}.out_layers.0`, 1e-5)), `${name}.out_layers.3`);
    const skip = c.w.has(`${name}.skip_connection.weight`) ? conv(c, x, `${name}.skip_connection`) : x;
    return g.add(skip, h);
  });
}

function attention(c: BlockContext, x: T, context: T, name: string, heads: number): T {
  const q = linear(c, x, `${name}.to_q`);
  const kv = c.kvHook ? c.kvHook(context, context) : { k: context, v: context };
  const k = linear(c, kv.k, `${name}.to_k`);
  const v = linear(c, kv.v, `${name}.to_v`);
  return linear(c, c.g.attention(q, k, v, heads), `${name}.to_out.0`);
}

/** SpatialTransformer with `depth` BasicTransformerBlocks (self-attn, cross-attn, GEGLU feed-forward). */
export function spatialTransformer(c: BlockContext, x: T, context: T, name: string, depth: number, heads: number, linearProj: boolean): T {
  const { g } = c;
  return g.scope(name, () => {
    const ch = x.shape[1] as number;
    let h = groupNorm(c, x, `${name}.norm`, 1e-6);
    if (!linearProj) h = conv(c, h, `${name}.proj_in`);
    h = g.reshape(g.transpose(h, [0, 2, 3, 1]), [0, -1, ch]);
    if (linearProj) h = linear(c, h, `${name}.proj_in`);
    for (let d = 0; d < depth; d++) {
      const b = `${name}.transformer_blocks.${d}`;
      const n1 = layerNorm(c, h, `${b}.norm1`);
      h = g.add(c.selfAttention?.(n1, `${b}.attn1`, heads) ?? attention(c, n1, n1, `${b}.attn1`, heads), h);
      h = g.add(attention(c, layerNorm(c, h, `${b}.norm2`), context, `${b}.attn2`, heads), h);
      const proj = linear(c, layerNorm(c, h, `${b}.norm3`), `${b}.ff.net.0.proj`);
      const [val, gate] = g.chunk(proj, 2, -1) as [T, T];
      h = g.add(linear(c, g.mul(val, g.gelu(gate)), `${b}.ff.net.2`), h);
    }
    if (linearProj) h = linear(c, h, `${name}.proj_out`);
    // back to NCHW using x's spatial dims
    const back = g.transpose(g.reshape(h, [0, 0, ch]), [0, 2, 1]);
    h = g.reshapeLike(back, x);
    if (!linearProj) h = conv(c, h, `${name}.proj_out`);
    return g.add(h, x);
  });
}

export function downsample(c: BlockContext, x: T, name: string): T {
  return conv(c, x, `${name}.op`, { stride: 2, padding: 1 });
}

/** Nearest upsample to the next skip tensor's size (odd latents), then a 3×3 conv. */
export function upsample(c: BlockContext, x: T, name: string, target: T | undefined): T {
  const up = target ? c.g.upsampleNearestLike(x, target) : c.g.upsampleNearest(x, 2);
  return conv(c, up, `${name}.conv`);
}

export function outHead(c: BlockContext, h: T): T {
  return conv(c, c.g.silu(groupNorm(c, h, 'out.0', 1e-5)), 'out.2');
}

export { conv as convLayer, linear as linearLayer, groupNorm as groupNormLayer };
