/**
 * T2I-Adapters (TencentARC, original key layouts: conv_in, body.N.{in_conv,block1,block2,down_opt.op}, and the
 * light one: body.N.{in_conv,body.M.block1/2,out_conv}) for SD1.x, as ComfyUI's T2IAdapter runs them: the hint is pixel-unshuffled by 8, a conv and 2 resnet blocks per
 * level give one feature map per level, and feature k is added to the UNet's hidden state after input block
 * 3k+2 (the last block of each SD1.5 level) when the shapes agree. The features depend only on the hint, so
 * they are computed once per hint and size.
 */
import { GraphBuilder, type T } from '../../graph/builder.js';
import type { Graph } from '../../graph/ir.js';
import { compileGraph, type CompiledSession, type TensorData } from '../../graph/session.js';
import { SafetensorsFile } from '../../safetensors/reader.js';
import { ModelKeyError, WeightSet } from '../weights.js';

export interface T2IArch {
  /** Adapter (conv_in + resnet blocks) or Adapter_light (per level: 1x1 in, light resnets, 1x1 out). */
  kind: 'full' | 'light';
  /** Image channels of the hint the adapter takes (after unshuffle: x64). */
  hintChannels: number;
  levels: Array<{ blocks: Array<{ down: boolean; inConv: boolean }> }>;
  ksize: number;
  useConv: boolean;
}

export function isT2IAdapterFile(file: SafetensorsFile): boolean {
  return (file.has('conv_in.weight') && file.has('body.0.block1.weight')) || file.has('body.0.in_conv.weight');
}

function detectLight(w: WeightSet): T2IArch {
  let levels = 0;
  while (w.has(`body.${levels}.in_conv.weight`)) levels++;
  let rb = 0;
  while (w.has(`body.0.body.${rb}.block1.weight`)) rb++;
  const cin = w.shape('body.0.in_conv.weight')[1]!;
  if (cin % 64) throw new ModelKeyError(w.file.path, 'body.0.in_conv.weight', `${cin} input channels is not a pixel-unshuffled (x64) image`);
  return {
    kind: 'light',
    hintChannels: cin / 64,
    levels: Array.from({ length: levels }, (_, i) => ({ blocks: Array.from({ length: rb }, () => ({ down: i > 0, inConv: true })) })),
    ksize: 3,
    useConv: false,
  };
}

export function detectT2I(w: WeightSet): T2IArch {
  // ComfyUI tests for the light layout first.
  if (w.has('body.0.in_conv.weight')) return detectLight(w);
  if (!w.has('conv_in.weight') || !w.has('body.0.block1.weight')) {
    throw new ModelKeyError(w.file.path, 'conv_in.weight', 'not a T2I-Adapter in the original layout (conv_in / body.N.block1, or body.N.in_conv for the light one)');
  }
  const cin = w.shape('conv_in.weight')[1]!;
  if (cin === 256 || cin === 768) throw new ModelKeyError(w.file.path, 'conv_in.weight', 'SDXL T2I-Adapters are not supported yet');
  if (cin % 64) throw new ModelKeyError(w.file.path, 'conv_in.weight', `${cin} input channels is not a pixel-unshuffled (x64) image`);
  let nBlocks = 0;
  while (w.has(`body.${nBlocks}.block1.weight`)) nBlocks++;
  const perLevel = 2;
  if (nBlocks % perLevel) throw new ModelKeyError(w.file.path, `body.${nBlocks}.block1.weight`, `${nBlocks} resnet blocks is not 2 per level`);
  const useConv = w.names().some((n) => n.endsWith('down_opt.op.weight'));
  // ComfyUI builds the blocks with sk=True: an in_conv only where the width changes (other in_conv / skep keys
  // a file may carry are left unused, as load_state_dict leaves them).
  let width = w.shape('conv_in.weight')[0]!;
  const levels = Array.from({ length: nBlocks / perLevel }, (_, i) => ({
    blocks: Array.from({ length: perLevel }, (_, j) => {
      const name = `body.${i * perLevel + j}`;
      const out = w.shape(`${name}.block1.weight`)[0]!;
      const inConv = out !== width;
      if (inConv && !w.has(`${name}.in_conv.weight`)) throw new ModelKeyError(w.file.path, `${name}.in_conv.weight`, `block goes from ${width} to ${out} channels without an in_conv`);
      width = out;
      return { down: i > 0 && j === 0, inConv };
    }),
  }));
  return { kind: 'full', hintChannels: cin / 64, levels, ksize: w.shape('body.0.block2.weight')[2]!, useConv };
}

/** The adapter body on an unshuffled hint of a fixed size (avg-pool padding depends on odd sizes). */
export function buildT2IGraph(w: WeightSet, a: T2IArch, H: number, W: number): Graph {
  const g = new GraphBuilder();
  const conv = (x: T, name: string, k: number, stride = 1) => g.conv2d(x, w.bind(g, `${name}.weight`), w.bind(g, `${name}.bias`), { stride, padding: Math.floor(k / 2) });
  const x = g.input('x', 'float32', ['B', a.hintChannels * 64, H, W]);
  let size = [H, W];
  // avg_pool2d(2, 2) with ComfyUI's padding of one cell on odd sides (zeros counted in the mean).
  const avgPool = (h: T): T => {
    const [ph, pw] = [size[0]! % 2, size[1]! % 2];
    if (ph !== pw) throw new Error(`T2I-Adapter: a ${size[0]}x${size[1]} feature map (one side odd) cannot be pooled; use a latent whose sides are both multiples of 8`);
    const c = h.shape[1] as number;
    size = size.map((s) => Math.floor((s + 2 * ph - 2) / 2) + 1);
    return g.conv2d(h, g.constant(new Float32Array(c * 4).fill(0.25), [c, 1, 2, 2]), undefined, { stride: 2, padding: ph, groups: c });
  };
  if (a.kind === 'light') {
    let h = x;
    a.levels.forEach((lvl, i) => {
      if (i > 0) h = avgPool(h);
      h = conv(h, `body.${i}.in_conv`, 1);
      lvl.blocks.forEach((_, r) => {
        const b = `body.${i}.body.${r}`;
        h = g.add(conv(g.relu(conv(h, `${b}.block1`, 3)), `${b}.block2`, 3), h);
      });
      h = conv(h, `body.${i}.out_conv`, 1);
      g.output(`feature_${i}`, h);
    });
    return g.graph;
  }
  let h = conv(x, 'conv_in', 3);
  a.levels.forEach((lvl, i) => {
    lvl.blocks.forEach((b, j) => {
      const name = `body.${i * lvl.blocks.length + j}`;
      if (b.down) {
        if (a.useConv) {
          h = conv(h, `${name}.down_opt.op`, 3, 2);
          size = size.map((s) => Math.floor((s - 1) / 2) + 1);
        } else {
          h = avgPool(h);
        }
      }
      if (b.inConv) h = conv(h, `${name}.in_conv`, a.ksize);
      const r = conv(g.relu(conv(h, `${name}.block1`, 3)), `${name}.block2`, a.ksize);
      h = g.add(r, h);
    });
    g.output(`feature_${i}`, h);
  });
  return g.graph;
}

function pixelUnshuffle8(data: Float32Array, dims: readonly number[]): { data: Float32Array; dims: [number, number, number, number] } {
  const [b, c, h, w] = dims as [number, number, number, number];
  const s = 8;
  const [oh, ow] = [Math.floor(h / s), Math.floor(w / s)];
  const out = new Float32Array(b * c * s * s * oh * ow);
  for (let n = 0; n < b; n++)
    for (let ch = 0; ch < c; ch++)
      for (let i = 0; i < s; i++)
        for (let j = 0; j < s; j++) {
          const oc = (ch * s + i) * s + j;
          for (let y = 0; y < oh; y++) for (let x = 0; x < ow; x++) out[((n * c * s * s + oc) * oh + y) * ow + x] = data[((n * c + ch) * h + y * s + i) * w + x * s + j]!;
        }
  return { data: out, dims: [b, c * s * s, oh, ow] };
}

export class T2IAdapter {
  private sessions = new Map<string, Promise<CompiledSession>>();
  private cache: { hint: Float32Array; key: string; features: TensorData[] } | null = null;

  private constructor(
    readonly name: string,
    readonly weights: WeightSet,
    readonly arch: T2IArch,
  ) {}

  static load(path: string): T2IAdapter {
    const w = new WeightSet(SafetensorsFile.open(path), '');
    return new T2IAdapter(path, w, detectT2I(w));
  }

  /** Input block that feature k joins: ComfyUI pops one entry per input block from [.., x_k, None, None, ..]. */
  static targetBlock(level: number): number {
    return 3 * level + 2;
  }

  /** Features for a hint NCHW in [0, 1] at 8x the latent size; one-channel adapters get the channel mean. */
  async features(hint: Float32Array, dims: readonly [number, number, number, number]): Promise<TensorData[]> {
    const key = dims.join('x');
    // The sampler re-broadcasts the hint per call: compare contents, not identity.
    const c0 = this.cache;
    if (c0 && c0.key === key && c0.hint.length === hint.length && c0.hint.every((v, i) => v === hint[i])) return c0.features;
    let [b, c, h, w] = dims;
    let data = hint;
    if (this.arch.hintChannels === 1 && c > 1) {
      const mean = new Float32Array(b * h * w);
      for (let n = 0; n < b; n++) for (let i = 0; i < h * w; i++) {
        let s = 0;
        for (let k = 0; k < c; k++) s += data[(n * c + k) * h * w + i]!;
        mean[n * h * w + i] = s / c;
      }
      data = mean;
      c = 1;
    }
    if (c !== this.arch.hintChannels) throw new Error(`${this.name}: the hint has ${c} channels, this T2I-Adapter takes ${this.arch.hintChannels}`);
    const un = pixelUnshuffle8(data, [b, c, h, w]);
    const sk = `${un.dims[2]}x${un.dims[3]}`;
    let s = this.sessions.get(sk);
    if (!s) {
      s = compileGraph(buildT2IGraph(this.weights, this.arch, un.dims[2], un.dims[3]));
      this.sessions.set(sk, s);
    }
    const out = await (await s).run({ x: { data: un.data, dims: un.dims } });
    const features = this.arch.levels.map((_, i) => out[`feature_${i}`]!);
    this.cache = { hint: Float32Array.from(hint), key, features };
    return features;
  }
}
