import { GraphBuilder, type T } from '../../graph/builder.js';
import type { Graph } from '../../graph/ir.js';
import type { WeightSet } from '../weights.js';
import type { VaeConfig } from './config.js';

/** LDM `Normalize`: always 32 groups; eps 1e-6 (not torch's 1e-5 default). */
const GROUPS = 32;
const EPS = 1e-6;

interface Ctx {
  g: GraphBuilder;
  ws: WeightSet;
  /** Debug graphs expose module outputs under their state-dict path. */
  tap?: (name: string, t: T) => void;
}

function conv(c: Ctx, x: T, name: string, inC: number, outC: number, k: number, o: { stride?: number; padding?: number } = {}): T {
  const w = c.ws.bind(c.g, `${name}.weight`, [outC, inC, k, k]);
  const b = c.ws.bind(c.g, `${name}.bias`, [outC]);
  return c.g.conv2d(x, w, b, { stride: o.stride ?? 1, padding: o.padding ?? (k - 1) / 2 });
}

function norm(c: Ctx, x: T, name: string, ch: number): T {
  return c.g.groupNorm(x, GROUPS, c.ws.bind(c.g, `${name}.weight`, [ch]), c.ws.bind(c.g, `${name}.bias`, [ch]), EPS);
}

function resnetBlock(c: Ctx, x: T, name: string, inC: number, outC: number): T {
  const { g } = c;
  return g.scope(name, () => {
    let h = conv(c, g.silu(norm(c, x, `${name}.norm1`, inC)), `${name}.conv1`, inC, outC, 3);
    h = conv(c, g.silu(norm(c, h, `${name}.norm2`, outC)), `${name}.conv2`, outC, outC, 3);
    let skip = x;
    if (inC !== outC) {
      // Original LDM configs use the 1x1 "nin" shortcut; conv_shortcut (3x3) only exists with conv_shortcut=True.
      skip = c.ws.has(`${name}.conv_shortcut.weight`) && !c.ws.has(`${name}.nin_shortcut.weight`)
        ? conv(c, x, `${name}.conv_shortcut`, inC, outC, 3)
        : conv(c, x, `${name}.nin_shortcut`, inC, outC, 1);
    }
    return g.add(skip, h);
  });
}

/** q/k/v/proj_out are 1x1 convs in LDM files, plain [C, C] matrices in some converted ones. */
function projection(c: Ctx, seq: T, name: string, ch: number): T {
  const { g, ws } = c;
  const w = ws.shape(`${name}.weight`).length === 4
    ? g.reshape(ws.bind(g, `${name}.weight`, [ch, ch, 1, 1]), [ch, ch])
    : ws.bind(g, `${name}.weight`, [ch, ch]);
  return g.linear(seq, w, ws.bind(g, `${name}.bias`, [ch]));
}

/** Single-head self-attention over all H·W positions, scale C^-0.5, with a residual. */
function attnBlock(c: Ctx, x: T, name: string, ch: number): T {
  const { g } = c;
  return g.scope(name, () => {
    const seq = g.reshape(g.transpose(norm(c, x, `${name}.norm`, ch), [0, 2, 3, 1]), [0, -1, ch]);
    const q = projection(c, seq, `${name}.q`, ch);
    const k = projection(c, seq, `${name}.k`, ch);
    const v = projection(c, seq, `${name}.v`, ch);
    const out = projection(c, g.attention(q, k, v, 1), `${name}.proj_out`, ch);
    return g.add(x, g.reshapeLike(g.transpose(out, [0, 2, 1]), x));
  });
}

/**
 * LDM's encoder downsample pads one zero column on the right and one zero row at the bottom before a
 * stride-2 valid conv. Symmetric padding would shift every output by one pixel, so the zeros are built
 * from slices of x (times 0) to keep the run-time H and W symbolic.
 */
function downsample(c: Ctx, x: T, name: string, ch: number): T {
  const { g } = c;
  const wide = g.concat([x, g.mul(g.slice(x, 3, 0, 1), 0)], 3);
  const padded = g.concat([wide, g.mul(g.slice(wide, 2, 0, 1), 0)], 2);
  return conv(c, padded, `${name}.conv`, ch, ch, 3, { stride: 2, padding: 0 });
}

function upsample(c: Ctx, x: T, name: string, ch: number): T {
  return conv(c, c.g.upsampleNearest(x, 2), `${name}.conv`, ch, ch, 3);
}

function midBlock(c: Ctx, h: T, root: string, ch: number, attention: boolean): T {
  h = resnetBlock(c, h, `${root}.mid.block_1`, ch, ch);
  c.tap?.(`${root}.mid.block_1`, h);
  if (attention) {
    h = attnBlock(c, h, `${root}.mid.attn_1`, ch);
    c.tap?.(`${root}.mid.attn_1`, h);
  }
  h = resnetBlock(c, h, `${root}.mid.block_2`, ch, ch);
  c.tap?.(`${root}.mid.block_2`, h);
  return h;
}

function context(ws: WeightSet, debug: boolean): Ctx {
  const g = new GraphBuilder();
  const c: Ctx = { g, ws };
  if (debug) c.tap = (name, t) => g.output(`intermediate/${name}`, t);
  return c;
}

/** latent z [B, embedDim, h, w] (unscaled) -> raw image [B, outChannels, h·f, w·f], roughly [-1, 1]. */
export function buildDecoderGraph(ws: WeightSet, cfg: VaeConfig, opts: { intermediates?: boolean } = {}): Graph {
  const c = context(ws, opts.intermediates ?? false);
  const { g } = c;
  const z = g.input('z', 'float32', ['B', cfg.embedDim, 'H', 'W']);
  let h = z;
  if (cfg.postQuantConv) {
    h = conv(c, h, 'post_quant_conv', cfg.embedDim, cfg.zChannels, 1);
    c.tap?.('post_quant_conv', h);
  }
  const levels = cfg.chMult.length;
  let blockIn = cfg.ch * cfg.chMult[levels - 1]!;
  h = conv(c, h, 'decoder.conv_in', cfg.zChannels, blockIn, 3);
  c.tap?.('decoder.conv_in', h);
  h = midBlock(c, h, 'decoder', blockIn, cfg.midAttention);
  for (let lvl = levels - 1; lvl >= 0; lvl--) {
    const out = cfg.ch * cfg.chMult[lvl]!;
    for (let b = 0; b <= cfg.numResBlocks; b++) {
      h = resnetBlock(c, h, `decoder.up.${lvl}.block.${b}`, blockIn, out);
      blockIn = out;
      c.tap?.(`decoder.up.${lvl}.block.${b}`, h);
      if (cfg.attnLevels.includes(lvl)) {
        h = attnBlock(c, h, `decoder.up.${lvl}.attn.${b}`, out);
        c.tap?.(`decoder.up.${lvl}.attn.${b}`, h);
      }
    }
    if (lvl !== 0) {
      h = upsample(c, h, `decoder.up.${lvl}.upsample`, blockIn);
      c.tap?.(`decoder.up.${lvl}.upsample`, h);
    }
  }
  h = conv(c, g.silu(norm(c, h, 'decoder.norm_out', blockIn)), 'decoder.conv_out', blockIn, cfg.outChannels, 3);
  c.tap?.('decoder.conv_out', h);
  g.output('raw', h);
  return g.graph;
}

/**
 * image [B, inChannels, H, W] in [0, 1] (NCHW) -> moments [B, 2·embedDim, H/f, W/f] = concat(mean, logvar)
 * before clamping (or just the mean for single-z encoders). The 2x-1 input mapping happens in the graph.
 */
export function buildEncoderGraph(ws: WeightSet, cfg: VaeConfig, opts: { intermediates?: boolean } = {}): Graph {
  const c = context(ws, opts.intermediates ?? false);
  const { g } = c;
  const image = g.input('image', 'float32', ['B', cfg.inChannels, 'H', 'W']);
  let blockIn = cfg.ch;
  let h = conv(c, g.sub(g.mul(image, 2), 1), 'encoder.conv_in', cfg.inChannels, blockIn, 3);
  c.tap?.('encoder.conv_in', h);
  const levels = cfg.chMult.length;
  for (let lvl = 0; lvl < levels; lvl++) {
    const out = cfg.ch * cfg.chMult[lvl]!;
    for (let b = 0; b < cfg.numResBlocks; b++) {
      h = resnetBlock(c, h, `encoder.down.${lvl}.block.${b}`, blockIn, out);
      blockIn = out;
      c.tap?.(`encoder.down.${lvl}.block.${b}`, h);
      if (cfg.attnLevels.includes(lvl)) {
        h = attnBlock(c, h, `encoder.down.${lvl}.attn.${b}`, out);
        c.tap?.(`encoder.down.${lvl}.attn.${b}`, h);
      }
    }
    if (lvl !== levels - 1) {
      h = downsample(c, h, `encoder.down.${lvl}.downsample`, blockIn);
      c.tap?.(`encoder.down.${lvl}.downsample`, h);
    }
  }
  h = midBlock(c, h, 'encoder', blockIn, cfg.midAttention);
  const zOut = cfg.doubleZ ? 2 * cfg.zChannels : cfg.zChannels;
  h = conv(c, g.silu(norm(c, h, 'encoder.norm_out', blockIn)), 'encoder.conv_out', blockIn, zOut, 3);
  c.tap?.('encoder.conv_out', h);
  if (cfg.quantConv) {
    const embOut = cfg.doubleZ ? 2 * cfg.embedDim : cfg.embedDim;
    h = conv(c, h, 'quant_conv', zOut, embOut, 1);
  }
  g.output('moments', h);
  return g.graph;
}
