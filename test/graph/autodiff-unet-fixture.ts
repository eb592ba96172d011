/**
 * The tiny conformance UNet with an epsilon-prediction MSE loss, as ResAdapter training sees it: frozen
 * weights everywhere except a few resnet GroupNorm affines and a down/upsampler conv.
 */
import { join } from 'node:path';
import type { Graph, TensorData } from '../../runtime/graph/index.js';
import { GraphExtender } from '../../runtime/graph/autodiff/index.js';
import { inferUnetConfig } from '../../runtime/models/unet/config.js';
import { buildUnetGraph, resAdapterTargets } from '../../runtime/models/unet/unet.js';
import { WeightSet } from '../../runtime/models/weights.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import { CONFORMANCE_DIR } from '../sampling/conformance.js';
import { uniform } from './harness.js';

export const TINY_UNET = join(CONFORMANCE_DIR, 'models', 'tiny-sd15-a.safetensors');

const PREFIX = 'model.diffusion_model.';

/** Trainable tensors: resnet norm weights/biases at three depths, the downsampler and the upsampler conv. */
export const TRAINABLE = [
  'input_blocks.1.0.in_layers.0.weight',
  'middle_block.0.out_layers.0.bias',
  'output_blocks.2.0.in_layers.0.weight',
  'input_blocks.2.0.op.weight',
  'output_blocks.1.2.conv.weight',
].map((n) => PREFIX + n);

/** Forward graph with inputs x, timesteps, context, target and output loss = mean((eps − target)²). */
export function tinyUnetLossGraph(): Graph {
  const w = new WeightSet(SafetensorsFile.open(TINY_UNET), PREFIX);
  const cfg = inferUnetConfig(w, { numHeads: 2 });
  const forward = buildUnetGraph(w, cfg, { overridable: resAdapterTargets(w) });
  const ext = new GraphExtender(forward);
  const { g } = ext;
  const eps = ext.handle(forward.outputs.find((o) => o.name === 'eps')!.value);
  const d = g.sub(eps, g.input('target', 'float32', ['B', 4, 'H', 'W']));
  g.output('loss', g.reduceMean(g.mul(d, d), [0, 1, 2, 3], false));
  g.graph.outputs = g.graph.outputs.filter((o) => o.name === 'loss');
  return g.graph;
}

export function tinyUnetFeeds(b: number, h: number, w: number, seed: number): Record<string, TensorData> {
  return {
    x: { data: uniform(b * 4 * h * w, seed, -1.5, 1.5), dims: [b, 4, h, w] },
    timesteps: { data: Float32Array.from({ length: b }, (_, i) => 100 + 350 * i), dims: [b] },
    context: { data: uniform(b * 3 * 32, seed + 1, -1, 1), dims: [b, 3, 32] },
    target: { data: uniform(b * 4 * h * w, seed + 2, -1, 1), dims: [b, 4, h, w] },
  };
}
