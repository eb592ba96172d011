/**
 * The ResAdapter training graph: the frozen UNet with a rank-r LoRA (alpha/r)·up(down(x)) beside every
 * down/upsampler conv and the resnet GroupNorm affines read from graph inputs, an epsilon-prediction MSE,
 * and its reverse-mode gradient with respect to exactly those inputs.
 */
import { createHash } from 'node:crypto';
import type { T } from '../graph/builder.js';
import type { Graph, Node } from '../graph/ir.js';
import { buildGradientGraph, GraphExtender } from '../graph/autodiff/index.js';
import type { UnetConfig } from '../models/unet/config.js';
import { buildUnetGraph } from '../models/unet/unet.js';
import type { WeightSet } from '../models/weights.js';
import { normName, type AdapterLayout } from './params.js';

export interface TrainGraphOptions {
  /**
   * Base weights that differ from the file (full checkpoint keys), e.g. the merged adapters of a patched
   * model: training adapts the model the user wired in, not the file under it.
   */
  overrides?: ReadonlyMap<string, Float32Array>;
  /** Recompute activations per block in the backward pass (less memory, about one more forward). */
  recompute?: boolean;
}

const BLOCK = /(?:^|[./])(input_blocks\.\d+|middle_block\.\d+|output_blocks\.\d+|time_embed|label_emb|out)\./;

/**
 * The UNet block each node of a training graph belongs to, the unit of checkpointed training
 * (segmented-session.ts): each input block, each middle-block module, each output block, the time embedding
 * and the output head. Resnets and transformers carry their block in their scope; the convs of conv_in, the
 * down/upsamplers and the head are unscoped and are placed by the weights (or LoRA inputs) they read.
 */
export function unetBlocks(graph: Graph): (n: Node) => string | undefined {
  const names = new Map<number, string>([...graph.weights.map((w) => [w.value, w.name] as const), ...graph.inputs.map((i) => [i.value, i.name] as const)]);
  return (n) => {
    const scoped = n.scope ? BLOCK.exec(`${n.scope}.`)?.[1] : undefined;
    if (scoped) return scoped;
    for (const i of n.inputs) {
      const b = BLOCK.exec(names.get(i) ?? '')?.[1];
      if (b) return b;
    }
    return undefined;
  };
}

function contentKey(data: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).digest('hex').slice(0, 24);
}

/**
 * Forward graph: inputs x, timesteps, context (and `y` for SDXL UNets), target and the trainable tensors;
 * output `loss` = mean((eps − target)²).
 */
export function buildLossGraph(w: WeightSet, cfg: UnetConfig, layout: AdapterLayout, opts: TrainGraphOptions = {}): Graph {
  const lora = new Map(layout.lora.map((m) => [m.module, m]));
  const norms = new Set(layout.norms);
  const scale = layout.alpha / layout.rank;
  const r = layout.rank;
  const made = new Map<string, T>();
  const weightHook = (name: string, bound: T): T => {
    const done = made.get(name);
    if (done) return done;
    let t = bound;
    if (norms.has(name)) t = bound.g.input(normName(name), 'float32', bound.shape);
    else {
      const data = opts.overrides?.get(w.prefix + name);
      if (data) {
        const key = `${w.prefix}${name}@${contentKey(data)}`;
        t = bound.g.weight(key, bound.shape, { key, load: () => data });
      }
    }
    made.set(name, t);
    return t;
  };
  // conv(x, W + s·up·down) computed as conv(x, W) + s·up(down(x)), kohya's form: the frozen W stays a
  // constant (prepacked by ORT) and the backward never forms a full-size dW, only rank-r ones.
  const convHook = (name: string, x: T, y: T, o: { stride: number; padding: number }): T => {
    const m = lora.get(name);
    if (!m) return y;
    const { g } = x;
    const [out, inCh, kh, kw] = m.shape;
    const down = g.input(m.down, 'float32', [r, inCh, kh, kw]);
    const up = g.input(m.up, 'float32', [out, r, 1, 1]);
    // The scale goes on the tiny up factor rather than on the full-size branch output.
    return g.add(y, g.conv2d(g.conv2d(x, down, undefined, o), g.mul(up, scale), undefined));
  };
  const forward = buildUnetGraph(w, cfg, { weightHook, convHook });
  const missing = layout.params.filter((p) => !forward.inputs.some((i) => i.name === p.name));
  if (missing.length) throw new Error(`training graph: the UNet never binds ${missing.map((p) => p.target).join(', ')}`);

  const ext = new GraphExtender(forward);
  const { g } = ext;
  const eps = ext.handle(forward.outputs.find((o) => o.name === 'eps')!.value);
  const d = g.sub(eps, g.input('target', 'float32', ['B', cfg.outChannels, 'H', 'W']));
  g.output('loss', g.reduceMean(g.mul(d, d), [0, 1, 2, 3], false));
  g.graph.outputs = g.graph.outputs.filter((o) => o.name === 'loss');
  return g.graph;
}

/** The gradient graph: outputs `loss` and `grad/<param>` for every trainable tensor of the layout. */
export function buildTrainingGraph(w: WeightSet, cfg: UnetConfig, layout: AdapterLayout, opts: TrainGraphOptions = {}): Graph {
  const forward = buildLossGraph(w, cfg, layout, opts);
  return buildGradientGraph(forward, { loss: 'loss', wrt: layout.params.map((p) => p.name), recompute: opts.recompute ?? false });
}
