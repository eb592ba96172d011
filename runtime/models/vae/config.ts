import type { SafetensorsFile } from '../../safetensors/reader.js';
import { ModelKeyError, type WeightSet } from '../weights.js';

/**
 * The AutoencoderKL hyper-parameters (LDM `ddconfig` plus the quant convs), read back from a file's key
 * names and tensor shapes so that the tiny test VAE and a full SD/SDXL VAE go through the same code.
 */
export interface VaeConfig {
  /** Base channel count (`ch`). */
  ch: number;
  /** Channel multiplier per resolution level, shallowest first. */
  chMult: number[];
  /** ResNet blocks per encoder level; decoder levels have one more. */
  numResBlocks: number;
  /** Channels of the image side: encoder input / decoder output (3 for RGB). */
  inChannels: number;
  outChannels: number;
  /** Channels of the decoder's conv_in input (`z_channels`). */
  zChannels: number;
  /** Channels of the latent the sampler sees (`embed_dim`); equals zChannels without quant convs. */
  embedDim: number;
  /** Encoder emits mean and logvar (2·z channels). */
  doubleZ: boolean;
  /** Levels whose ResNet blocks are each followed by an attention block (LDM `attn_resolutions`). */
  attnLevels: number[];
  midAttention: boolean;
  quantConv: boolean;
  postQuantConv: boolean;
  hasEncoder: boolean;
  /** Image pixels per latent pixel along each axis: 2^(levels-1). */
  downscale: number;
}

const ANCHOR = 'decoder.conv_in.weight';

/**
 * Where the VAE lives in a file: "first_stage_model." in single-file checkpoints, "" in standalone VAE files,
 * or whatever precedes the decoder's conv_in. The checkpoint prefix wins when several would match.
 */
export function detectVaePrefix(file: SafetensorsFile): string {
  const candidates = file.keys().filter((k) => k.endsWith(ANCHOR)).map((k) => k.slice(0, k.length - ANCHOR.length));
  const valid = candidates.filter((p) => p === '' || p.endsWith('.'));
  for (const preferred of ['first_stage_model.', '', 'vae.']) if (valid.includes(preferred)) return preferred;
  if (valid.length) return valid.sort((a, b) => a.length - b.length)[0]!;
  throw new ModelKeyError(file.path, `first_stage_model.${ANCHOR}`, 'no VAE found (neither a checkpoint\'s first_stage_model.* nor standalone encoder/decoder keys)');
}

/** Sorted distinct integers N found in names of the form `<head>N.<rest>`. */
function indicesUnder(names: string[], head: string): number[] {
  const found = new Set<number>();
  for (const n of names) {
    if (!n.startsWith(head)) continue;
    const m = /^(\d+)\./.exec(n.slice(head.length));
    if (m) found.add(Number(m[1]));
  }
  return [...found].sort((a, b) => a - b);
}

function requireContiguous(ws: WeightSet, idx: number[], head: string, what: string): void {
  idx.forEach((v, i) => {
    if (v !== i) throw new ModelKeyError(ws.file.path, `${ws.prefix}${head}${i}`, `${what} ${i} is missing (found ${idx.join(', ')})`);
  });
}

export function inferVaeConfig(ws: WeightSet): VaeConfig {
  const names = ws.names();
  if (ws.has('decoder.up_blocks.0.resnets.0.conv1.weight')) {
    // Same anchor key as LDM files, but diffusers block names: say so rather than report a missing LDM key.
    throw new ModelKeyError(ws.file.path, `${ws.prefix}decoder.up_blocks.0.resnets.0.conv1.weight`, 'diffusers-layout VAE keys are not supported; use an LDM-layout (original) VAE file');
  }
  const shape = (n: string) => ws.shape(n);
  const convOut = shape('decoder.conv_out.weight');
  const ch = convOut[1]!;
  const outChannels = convOut[0]!;
  const zChannels = shape('decoder.conv_in.weight')[1]!;

  const levels = indicesUnder(names, 'decoder.up.');
  if (!levels.length) throw new ModelKeyError(ws.file.path, `${ws.prefix}decoder.up.0.block.0.conv1.weight`, 'decoder has no up levels');
  requireContiguous(ws, levels, 'decoder.up.', 'decoder level');
  const chMult = levels.map((i) => {
    const out = shape(`decoder.up.${i}.block.0.conv1.weight`)[0]!;
    if (out % ch) {
      throw new ModelKeyError(ws.file.path, `${ws.prefix}decoder.up.${i}.block.0.conv1.weight`, `${out} output channels is not a multiple of ch=${ch}`);
    }
    return out / ch;
  });
  const decBlocks = indicesUnder(names, 'decoder.up.0.block.');
  requireContiguous(ws, decBlocks, 'decoder.up.0.block.', 'decoder block');
  const numResBlocks = decBlocks.length - 1;
  if (numResBlocks < 1) throw new ModelKeyError(ws.file.path, `${ws.prefix}decoder.up.0.block.1.conv1.weight`, 'decoder levels need at least two ResNet blocks');

  const attnLevels = levels.filter((i) => names.some((n) => n.startsWith(`decoder.up.${i}.attn.`)));
  const hasEncoder = ws.has('encoder.conv_in.weight');
  const inChannels = hasEncoder ? shape('encoder.conv_in.weight')[1]! : outChannels;
  const doubleZ = hasEncoder ? shape('encoder.conv_out.weight')[0] === 2 * zChannels : true;
  const postQuantConv = ws.has('post_quant_conv.weight');
  const quantConv = ws.has('quant_conv.weight');
  const embedDim = postQuantConv ? shape('post_quant_conv.weight')[1]! : quantConv ? shape('quant_conv.weight')[0]! / 2 : zChannels;

  return {
    ch,
    chMult,
    numResBlocks,
    inChannels,
    outChannels,
    zChannels,
    embedDim,
    doubleZ,
    attnLevels,
    midAttention: ws.has('decoder.mid.attn_1.q.weight'),
    quantConv,
    postQuantConv,
    hasEncoder,
    downscale: 2 ** (chMult.length - 1),
  };
}
