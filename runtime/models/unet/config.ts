import type { WeightSet } from '../weights.js';
import { ModelKeyError } from '../weights.js';

/** One input block of the LDM UNet as found in the checkpoint. */
export type InputBlockKind = { kind: 'conv_in' } | { kind: 'res'; level: number; attn: boolean; outCh: number } | { kind: 'down'; level: number };

export interface UnetConfig {
  inChannels: number;
  outChannels: number;
  modelChannels: number;
  timeEmbedDim: number;
  channelMult: number[];
  numResBlocks: number[];
  /** Transformer depth per input block that has attention (0 = none). */
  inputTransformerDepth: number[];
  outputTransformerDepth: number[];
  middleTransformerDepth: number;
  /** Either a fixed head count or a fixed head width: SD1.x uses 8 heads, SD2/SDXL 64-wide heads. */
  numHeads: number;
  numHeadChannels: number;
  contextDim: number;
  useLinearInTransformer: boolean;
  /** SDXL's label embedding input width (pooled text + size ids), or null. */
  admInChannels: number | null;
  inputBlocks: InputBlockKind[];
  groupNormGroups: number;
}

export interface UnetConfigOverrides {
  numHeads?: number;
  numHeadChannels?: number;
}

/** Counts `prefix.<i>.` indices present among names. */
function countIndexed(names: string[], prefix: string): number {
  let n = 0;
  const re = new RegExp(`^${prefix.replace(/\./g, '\\.')}(\\d+)\\.`);
  for (const k of names) {
    const m = re.exec(k);
    if (m) n = Math.max(n, Number(m[1]) + 1);
  }
  return n;
}

/**
 * Reads the architecture off key names and shapes, so tiny test models and full-size SD1.5/SDXL load through
 * the same code. Head count cannot be seen in shapes: it comes from overrides, file metadata, or the
 * family's convention (context 768 → SD1.x with 8 heads; otherwise 64-wide heads).
 */
export function inferUnetConfig(w: WeightSet, overrides: UnetConfigOverrides = {}, metadata: Record<string, string> = {}): UnetConfigWithFile {
  const names = w.names();
  const conv0 = w.shape('input_blocks.0.0.weight');
  const modelChannels = conv0[0]!;
  const inChannels = conv0[1]!;
  const timeEmbedDim = w.shape('time_embed.0.weight')[0]!;
  // ControlNets share the input half of the UNet but have no output head.
  const outChannels = w.has('out.2.weight') ? w.shape('out.2.weight')[0]! : inChannels;
  const nIn = countIndexed(names, 'input_blocks.');
  const nOut = countIndexed(names, 'output_blocks.');
  const inputBlocks: InputBlockKind[] = [{ kind: 'conv_in' }];
  const channelMult: number[] = [];
  const numResBlocks: number[] = [];
  const inputTransformerDepth: number[] = [0];
  let level = 0;
  let resInLevel = 0;
  let contextDim = 0;
  let useLinear = false;
  for (let i = 1; i < nIn; i++) {
    if (w.has(`input_blocks.${i}.0.op.weight`)) {
      inputBlocks.push({ kind: 'down', level });
      inputTransformerDepth.push(0);
      numResBlocks[level] = resInLevel;
      level++;
      resInLevel = 0;
      continue;
    }
    if (!w.has(`input_blocks.${i}.0.in_layers.2.weight`)) {
      throw new ModelKeyError(w.file.path, `${w.prefix}input_blocks.${i}.0.in_layers.2.weight`, 'input block is neither a resnet block nor a downsampler');
    }
    const outCh = w.shape(`input_blocks.${i}.0.out_layers.3.weight`)[0]!;
    channelMult[level] = outCh / modelChannels;
    const depth = countIndexed(names, `input_blocks.${i}.1.transformer_blocks.`);
    inputTransformerDepth.push(depth);
    if (depth > 0) {
      contextDim = w.shape(`input_blocks.${i}.1.transformer_blocks.0.attn2.to_k.weight`)[1]!;
      useLinear = w.shape(`input_blocks.${i}.1.proj_in.weight`).length === 2;
    }
    inputBlocks.push({ kind: 'res', level, attn: depth > 0, outCh });
    resInLevel++;
  }
  numResBlocks[level] = resInLevel;
  const outputTransformerDepth: number[] = [];
  for (let i = 0; i < nOut; i++) outputTransformerDepth.push(countIndexed(names, `output_blocks.${i}.1.transformer_blocks.`));
  const middleTransformerDepth = countIndexed(names, 'middle_block.1.transformer_blocks.');
  if (!contextDim && middleTransformerDepth) contextDim = w.shape('middle_block.1.transformer_blocks.0.attn2.to_k.weight')[1]!;
  const metaHeads = Number(metadata['resflow.unet.num_heads'] ?? NaN);
  let numHeads = overrides.numHeads ?? (Number.isFinite(metaHeads) ? metaHeads : -1);
  let numHeadChannels = overrides.numHeadChannels ?? -1;
  if (numHeads <= 0 && numHeadChannels <= 0) {
    if (contextDim === 768) numHeads = 8;
    else numHeadChannels = 64;
  }
  return {
    file: w.file.path,
    inChannels,
    outChannels,
    modelChannels,
    timeEmbedDim,
    channelMult,
    numResBlocks,
    inputTransformerDepth,
    outputTransformerDepth,
    middleTransformerDepth,
    numHeads,
    numHeadChannels,
    contextDim,
    useLinearInTransformer: useLinear,
    admInChannels: w.has('label_emb.0.0.weight') ? w.shape('label_emb.0.0.weight')[1]! : null,
    inputBlocks,
    groupNormGroups: 32,
  };
}

export interface UnetConfigWithFile extends UnetConfig {
  file: string;
}

export function headsFor(cfg: UnetConfig, channels: number): number {
  if (cfg.numHeads > 0) return cfg.numHeads;
  return Math.max(1, Math.floor(channels / cfg.numHeadChannels));
}
