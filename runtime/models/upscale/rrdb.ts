/**
 * ESRGAN / Real-ESRGAN RRDBNet upscale models (the family spandrel calls "ESRGAN"), read from either key
 * layout: the original ESRGAN `model.N...` sequence or BasicSR's named modules (conv_first, body.N.rdbK...).
 * 4x or 16x the output channels on the input means a pixel-unshuffled input (RealESRGAN_x2plus / x1): the
 * network then runs at 4x on an unshuffled image and the model's scale is 4 / shuffle.
 */
import { GraphBuilder, type T } from '../../graph/builder.js';
import type { Graph } from '../../graph/ir.js';
import { compileGraph, type CompiledSession } from '../../graph/session.js';
import { SafetensorsFile } from '../../safetensors/reader.js';
import { ModelKeyError, WeightSet } from '../weights.js';

export interface RrdbArch {
  inChannels: number;
  outChannels: number;
  numFilters: number;
  numBlocks: number;
  growth: number;
  /** Nearest x2 + conv stages of the network. */
  upsamples: number;
  /** Pixel-unshuffle factor of the input (1 = none). */
  shuffle: number;
  /** Output size / input size of the whole model. */
  scale: number;
  /** Module name of each conv, in the file's layout. */
  names: { first: string; block: (b: number, rdb: number, conv: number) => string; trunk: string; up: (i: number) => string; hr: string; last: string };
}

const OLD = {
  first: 'model.0',
  block: (b: number, rdb: number, conv: number) => `model.1.sub.${b}.RDB${rdb}.conv${conv}.0`,
};
const NEW = {
  first: 'conv_first',
  block: (b: number, rdb: number, conv: number) => `body.${b}.rdb${rdb}.conv${conv}`,
  trunk: 'conv_body',
  up: (i: number) => `conv_up${i + 1}`,
  hr: 'conv_hr',
  last: 'conv_last',
};

function countWhile(has: (i: number) => boolean): number {
  let n = 0;
  while (has(n)) n++;
  return n;
}

/** Reads the architecture off the keys and shapes; a file of another architecture fails naming a key. */
export function detectRrdb(w: WeightSet): RrdbArch {
  const path = w.file.path;
  const isNew = w.has('conv_first.weight');
  if (!isNew && !w.has('model.0.weight')) {
    throw new ModelKeyError(path, 'model.0.weight', 'not an ESRGAN-family (RRDBNet) upscale model: neither "model.0.weight" nor "conv_first.weight" is present');
  }
  let names: RrdbArch['names'];
  let numBlocks: number;
  let upsamples: number;
  if (isNew) {
    numBlocks = countWhile((b) => w.has(`${NEW.block(b, 1, 1)}.weight`));
    upsamples = countWhile((i) => w.has(`${NEW.up(i)}.weight`));
    names = NEW;
  } else {
    numBlocks = countWhile((b) => w.has(`${OLD.block(b, 1, 1)}.weight`));
    const seq = w
      .names()
      .map((n) => /^model\.(\d+)\.weight$/.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .filter((i) => i >= 2)
      .sort((a, b) => a - b);
    if (seq.length < 2) throw new ModelKeyError(path, 'model.10.weight', 'ESRGAN layout without the HR and last convs');
    const last = seq[seq.length - 1]!;
    const hr = seq[seq.length - 2]!;
    const ups = seq.slice(0, -2);
    upsamples = ups.length;
    names = { ...OLD, trunk: `model.1.sub.${numBlocks}`, up: (i: number) => `model.${ups[i]}`, hr: `model.${hr}`, last: `model.${last}` };
  }
  if (numBlocks === 0) throw new ModelKeyError(path, `${names.block(0, 1, 1)}.weight`, 'no RRDB blocks found');
  const first = w.shape(`${names.first}.weight`);
  const lastShape = w.shape(`${names.last}.weight`);
  const inChannels = first[1]!;
  const outChannels = lastShape[0]!;
  const shuffle = inChannels === outChannels * 16 ? 4 : inChannels === outChannels * 4 ? 2 : 1;
  const net = 2 ** upsamples;
  return {
    inChannels,
    outChannels,
    numFilters: first[0]!,
    numBlocks,
    growth: w.shape(`${names.block(0, 1, 1)}.weight`)[0]!,
    upsamples,
    shuffle,
    scale: net / shuffle,
    names,
  };
}

/** The network body: x [B, inChannels, H, W] (already unshuffled) -> [B, outChannels, H*2^ups, W*2^ups]. */
export function buildRrdbGraph(w: WeightSet, a: RrdbArch): Graph {
  const g = new GraphBuilder();
  const conv = (x: T, name: string) => g.conv2d(x, w.bind(g, `${name}.weight`), w.bind(g, `${name}.bias`), { padding: 1 });
  const lrelu = (x: T) => g.max(x, g.mul(x, 0.2));
  const x = g.input('x', 'float32', ['B', a.inChannels, 'H', 'W']);
  const fea = conv(x, a.names.first);
  let h = fea;
  for (let b = 0; b < a.numBlocks; b++) {
    const blockIn = h;
    for (let r = 1; r <= 3; r++) {
      const rdbIn = h;
      const feats = [rdbIn];
      let out = rdbIn;
      for (let c = 1; c <= 5; c++) {
        out = conv(feats.length === 1 ? rdbIn : g.concat(feats, 1), a.names.block(b, r, c));
        if (c < 5) {
          out = lrelu(out);
          feats.push(out);
        }
      }
      h = g.add(g.mul(out, 0.2), rdbIn);
    }
    h = g.add(g.mul(h, 0.2), blockIn);
  }
  h = g.add(fea, conv(h, a.names.trunk));
  for (let i = 0; i < a.upsamples; i++) h = lrelu(conv(g.upsampleNearest(h, 2), a.names.up(i)));
  g.output('y', conv(lrelu(conv(h, a.names.hr)), a.names.last));
  return g.graph;
}

/** A loaded upscale model: the raw network forward on NCHW float images. */
export class UpscaleModel {
  private session: Promise<CompiledSession> | undefined;

  private constructor(
    readonly weights: WeightSet,
    readonly arch: RrdbArch,
  ) {}

  static load(path: string): UpscaleModel {
    const w = new WeightSet(SafetensorsFile.open(path), detectPrefix(SafetensorsFile.open(path)));
    return new UpscaleModel(w, detectRrdb(w));
  }

  get scale(): number {
    return this.arch.scale;
  }

  /** Spandrel's size requirements: minimum side and multiple (pixel-unshuffle needs whole 2x2 cells of a 4x net). */
  get sizeRequirements(): { minimum: number; multipleOf: number } {
    return this.arch.shuffle > 1 ? { minimum: 2 * this.arch.shuffle, multipleOf: 2 * this.arch.shuffle } : { minimum: 2, multipleOf: 1 };
  }

  /** descriptor.model(x): x [B, outChannels, H, W] in [0, 1]-ish, unclamped output [B, C, H*scale, W*scale]. */
  async forward(data: Float32Array, dims: readonly [number, number, number, number]): Promise<{ data: Float32Array; dims: [number, number, number, number] }> {
    let [b, c, h, w] = dims;
    let input = data;
    const s = this.arch.shuffle;
    if (s > 1) {
      const padded = padBottomRight(data, dims, (s - (h % s)) % s, (s - (w % s)) % s, 'reflect');
      const ph = h + ((s - (h % s)) % s);
      const pw = w + ((s - (w % s)) % s);
      input = pixelUnshuffle(padded, [b, c, ph, pw], s);
      [c, h, w] = [c * s * s, ph / s, pw / s];
    }
    this.session ??= compileGraph(buildRrdbGraph(this.weights, this.arch));
    const out = (await (await this.session).run({ x: { data: input, dims: [b, c, h, w] } })).y!;
    const od = out.dims as [number, number, number, number];
    if (s === 1) return { data: out.data as Float32Array, dims: od };
    const [oh, ow] = [dims[2] * this.scale, dims[3] * this.scale];
    return { data: crop(out.data as Float32Array, od, oh, ow), dims: [od[0], od[1], oh, ow] };
  }
}

function detectPrefix(file: SafetensorsFile): string {
  // Some exports wrap the network ("module." from DataParallel); both layouts start with a first conv.
  for (const p of ['', 'module.', 'params_ema.', 'params.']) if (file.has(`${p}model.0.weight`) || file.has(`${p}conv_first.weight`)) return p;
  return '';
}

/** Pads the bottom and right edges: 'reflect' (mirror without the edge) or 'replicate'. */
export function padBottomRight(data: Float32Array, dims: readonly number[], padH: number, padW: number, mode: 'reflect' | 'replicate'): Float32Array {
  const [b, c, h, w] = dims as [number, number, number, number];
  if (!padH && !padW) return data;
  const H = h + padH;
  const W = w + padW;
  const src = (i: number, n: number) => (i < n ? i : mode === 'reflect' ? 2 * (n - 1) - i : n - 1);
  const out = new Float32Array(b * c * H * W);
  for (let p = 0; p < b * c; p++)
    for (let y = 0; y < H; y++) {
      const sy = src(y, h);
      for (let x = 0; x < W; x++) out[(p * H + y) * W + x] = data[(p * h + sy) * w + src(x, w)]!;
    }
  return out;
}

function pixelUnshuffle(data: Float32Array, dims: readonly number[], s: number): Float32Array {
  const [b, c, h, w] = dims as [number, number, number, number];
  const oh = h / s;
  const ow = w / s;
  const out = new Float32Array(data.length);
  for (let n = 0; n < b; n++)
    for (let ch = 0; ch < c; ch++)
      for (let i = 0; i < s; i++)
        for (let j = 0; j < s; j++) {
          const oc = (ch * s + i) * s + j;
          for (let y = 0; y < oh; y++)
            for (let x = 0; x < ow; x++) out[((n * c * s * s + oc) * oh + y) * ow + x] = data[((n * c + ch) * h + y * s + i) * w + x * s + j]!;
        }
  return out;
}

export function crop(data: Float32Array, dims: readonly number[], h: number, w: number): Float32Array {
  const [b, c, H, W] = dims as [number, number, number, number];
  if (H === h && W === w) return data;
  const out = new Float32Array(b * c * h * w);
  for (let p = 0; p < b * c; p++) for (let y = 0; y < h; y++) out.set(data.subarray((p * H + y) * W, (p * H + y) * W + w), (p * h + y) * w);
  return out;
}
