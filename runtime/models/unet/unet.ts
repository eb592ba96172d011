import { GraphBuilder, type T } from '../../graph/builder.js';
import type { Graph } from '../../graph/ir.js';
import type { WeightSet } from '../weights.js';
import { type BlockContext, type ConvHook, downsample, linearLayer, outHead, resBlock, spatialTransformer, timeEmbed, timestepEmbedding, upsample, bind } from './blocks.js';
import { headsFor, type UnetConfig } from './config.js';
import { freeuInGraph, resizeInGraph, tiledSelfAttention } from './patch-graph.js';
import { freeuScale, type UnetPatchVariant } from './patches.js';
import { hypernetworkKv } from '../hypernetwork/hypernetwork.js';

export interface UnetGraphOptions {
  /** Add ControlNet residual inputs (`control_0..n`, `control_middle`) to the skip connections and middle block. */
  withControl?: boolean;
  /** Weight names (relative to the UNet prefix) kept as run-time inputs so adapters can patch them. */
  overridable?: ReadonlySet<string>;
  /** Also output every block's result as `intermediate/<block>` (conformance debugging). */
  intermediates?: boolean;
  /** Rewrites bound weights (see BlockContext.weightHook); names are relative to the UNet prefix. */
  weightHook?: (name: string, t: T) => T;
  /** Adds to conv outputs (see BlockContext.convHook). */
  convHook?: ConvHook;
  /** Forward patches (FreeU, Deep Shrink, HyperTile) in the structure of one call; see patches.ts. */
  patches?: UnetPatchVariant;
  /** Input blocks whose output gets an added `control_in_<i>` input (T2I-Adapter features). */
  inputControlBlocks?: readonly number[];
}

/** Names of the ControlNet residual inputs for a config, in skip-connection order. */
export function controlInputNames(cfg: UnetConfig): string[] {
  return cfg.inputBlocks.map((_, i) => `control_${i}`);
}

/**
 * Builds the LDM UNet graph: inputs x [B, C, H, W], timesteps [B] (float), context [B, S, D], (y [B, adm] for
 * SDXL), optional control residuals; output eps [B, C, H, W].
 */
export function buildUnetGraph(w: WeightSet, cfg: UnetConfig, opts: UnetGraphOptions = {}): Graph {
  const g = new GraphBuilder();
  const over = opts.overridable;
  const c: BlockContext = { g, w, overridable: (k) => over?.has(k) ?? false, groups: cfg.groupNormGroups };
  if (opts.weightHook) c.weightHook = opts.weightHook;
  if (opts.convHook) c.convHook = opts.convHook;
  const patches = opts.patches;
  const shrink = patches?.shrink ?? null;
  if (patches?.hypernetworks.length) {
    const hn = patches.hypernetworks;
    c.kvHook = (k, v) => hypernetworkKv(g, hn, k, v);
  }
  if (patches?.tiled.length) {
    let layer = 0;
    const tiled = new Set(patches.tiled);
    c.selfAttention = (n1, name, heads) => {
      const k = layer++;
      if (!tiled.has(k)) return undefined;
      return g.scope(name, () => tiledSelfAttention(g, n1, k, heads, (x, which) => linearLayer(c, x, `${name}.${which}`), c.kvHook?.(n1, n1)));
    };
  }
  const x = g.input('x', 'float32', ['B', cfg.inChannels, 'H', 'W']);
  const timesteps = g.input('timesteps', 'float32', ['B']);
  const context = g.input('context', 'float32', ['B', 'S', cfg.contextDim]);
  const inter = (name: string, t: T) => {
    if (opts.intermediates) g.output(`intermediate/${name}`, t);
  };

  let emb = timeEmbed(c, timestepEmbedding(g, timesteps, cfg.modelChannels));
  // The two embedding terms are recorded apart (ComfyUI hooks each module), before they are summed.
  inter('time_embed', emb);
  if (cfg.admInChannels) {
    const y = g.input('y', 'float32', ['B', cfg.admInChannels]);
    const l0 = g.linear(y, bind(c, 'label_emb.0.0.weight'), bind(c, 'label_emb.0.0.bias'));
    const l2 = g.linear(g.silu(l0), bind(c, 'label_emb.0.2.weight'), bind(c, 'label_emb.0.2.bias'));
    inter('label_emb', l2);
    emb = g.add(emb, l2);
  }
  const embAct = g.silu(emb);

  const controls = opts.withControl
    ? cfg.inputBlocks.map((_, i) => g.input(`control_${i}`, 'float32', ['B', skipChannels(cfg, i), `h${i}`, `w${i}`]))
    : [];
  const hs: T[] = [];
  let h = x;
  cfg.inputBlocks.forEach((blk, i) => {
    const name = `input_blocks.${i}`;
    if (blk.kind === 'conv_in') h = g.conv2d(h, bind(c, `${name}.0.weight`), bind(c, `${name}.0.bias`), { padding: 1 });
    else if (blk.kind === 'down') h = downsample(c, h, `${name}.0`);
    else {
      h = resBlock(c, h, embAct, `${name}.0`);
      if (blk.attn) h = spatialTransformer(c, h, context, `${name}.1`, cfg.inputTransformerDepth[i]!, headsFor(cfg, blk.outCh), cfg.useLinearInTransformer);
    }
    // ComfyUI's apply_control(h, control, 'input'): added before the skip is taken.
    if (opts.inputControlBlocks?.includes(i)) h = g.add(h, g.input(`control_in_${i}`, 'float32', ['B', skipChannels(cfg, i), `hi${i}`, `wi${i}`]));
    inter(name, h);
    // Deep Shrink: ComfyUI's input_block_patch (the skip is the downscaled h) or ..._after_skip.
    if (shrink && i === shrink.block && !shrink.afterSkip) h = resizeInGraph(g, h, 'shrink_in', shrink.down);
    hs.push(h);
    if (shrink && i === shrink.block && shrink.afterSkip) h = resizeInGraph(g, h, 'shrink_in', shrink.down);
  });

  h = resBlock(c, h, embAct, 'middle_block.0');
  if (cfg.middleTransformerDepth > 0) {
    const ch = h.shape[1] as number;
    h = spatialTransformer(c, h, context, 'middle_block.1', cfg.middleTransformerDepth, headsFor(cfg, ch), cfg.useLinearInTransformer);
    h = resBlock(c, h, embAct, 'middle_block.2');
  } else if (w.has('middle_block.1.in_layers.0.weight')) {
    h = resBlock(c, h, embAct, 'middle_block.1');
  }
  if (opts.withControl) h = g.add(h, g.input('control_middle', 'float32', ['B', h.shape[1]!, 'hm', 'wm']));
  inter('middle_block', h);

  const skips = [...hs];
  const nOut = cfg.outputTransformerDepth.length;
  for (let j = 0; j < nOut; j++) {
    const name = `output_blocks.${j}`;
    let skip = skips.pop()!;
    if (opts.withControl) skip = g.add(skip, controls[skips.length]!);
    // output_block_patch: Deep Shrink brings h back to the skip's size, FreeU scales h and filters the skip.
    if (shrink?.resizeAt.includes(j)) h = resizeInGraph(g, h, `shrink_out_${j}`, shrink.up);
    const fu = patches?.freeu ? freeuScale(cfg, patches.freeu, h.shape[1] as number) : null;
    if (fu) {
      const r = freeuInGraph(g, h, skip, j, patches!.freeu!, fu.b);
      h = r.h;
      skip = r.hsp;
    }
    h = resBlock(c, g.concat([h, skip], 1), embAct, `${name}.0`);
    let idx = 1;
    if (cfg.outputTransformerDepth[j]! > 0) {
      h = spatialTransformer(c, h, context, `${name}.1`, cfg.outputTransformerDepth[j]!, headsFor(cfg, h.shape[1] as number), cfg.useLinearInTransformer);
      idx = 2;
    }
    if (w.has(`${name}.${idx}.conv.weight`)) h = upsample(c, h, `${name}.${idx}`, skips[skips.length - 1]);
    inter(name, h);
  }
  g.output('eps', outHead(c, h));
  return g.graph;
}

/** Channel count of skip connection i (the output of input block i). */
export function skipChannels(cfg: UnetConfig, i: number): number {
  let ch = cfg.modelChannels;
  for (let k = 0; k <= i; k++) {
    const b = cfg.inputBlocks[k]!;
    if (b.kind === 'res') ch = b.outCh;
  }
  return ch;
}

/**
 * The UNet weights an adapter may patch without a session rebuild: every resnet GroupNorm (ResAdapter's
 * norms) and every down/upsampler conv (ResAdapter's LoRA targets).
 */
export function resAdapterTargets(w: Pick<WeightSet, 'names'>): Set<string> {
  const out = new Set<string>();
  for (const n of w.names()) {
    if (/\.(in_layers\.0|out_layers\.0)\.(weight|bias)$/.test(n)) out.add(n);
    else if (/^input_blocks\.\d+\.0\.op\.(weight|bias)$/.test(n)) out.add(n);
    else if (/^output_blocks\.\d+\.\d+\.conv\.(weight|bias)$/.test(n)) out.add(n);
  }
  return out;
}
