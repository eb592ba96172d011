/**
 * UNet architecture descriptions and the LDM (original single-file checkpoint) key→shape tables they imply.
 *
 * Adapters are validated against a model's key→shape table before anything is merged. Real checkpoints
 * provide that table from their header; the tables generated here let the same checks run against the
 * full-size SD1.5 / SDXL layouts without multi-GB files, and `inferUnetArch` recovers the architecture of
 * any checkpoint (tiny test models included) so diffusers names can be mapped onto it.
 */
import type { SafetensorsFile } from '../safetensors/index.js';

export type Shape = readonly number[];
/** Full checkpoint key (e.g. `model.diffusion_model.out.2.weight`) → tensor shape. */
export type KeyShapeTable = ReadonlyMap<string, Shape>;

export const UNET_PREFIX = 'model.diffusion_model.';

export interface UnetArch {
  inChannels: number;
  outChannels: number;
  modelChannels: number;
  channelMult: readonly number[];
  /** Resnet blocks per level on the input side (the output side has one more per level). */
  numResBlocks: readonly number[];
  /** Transformer depth of the input-side blocks of each level; 0 = no attention at that level. */
  transformerDepth: readonly number[];
  /**
   * Depth for every output block, listed in ComfyUI's order: ascending level, consumed from the end while
   * the output blocks are built from the deepest level up.
   */
  transformerDepthOutput: readonly number[];
  /** 0 = the middle block is a single resnet (ComfyUI's -1); otherwise resnet, transformer, resnet. */
  transformerDepthMiddle: number;
  contextDim: number;
  useLinearInTransformer: boolean;
  /** Width of the SDXL `y` vector fed to label_emb; null when the model has no label embedding. */
  admInChannels: number | null;
}

export const SD15_UNET: UnetArch = {
  inChannels: 4,
  outChannels: 4,
  modelChannels: 320,
  channelMult: [1, 2, 4, 4],
  numResBlocks: [2, 2, 2, 2],
  transformerDepth: [1, 1, 1, 0],
  transformerDepthOutput: [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
  transformerDepthMiddle: 1,
  contextDim: 768,
  useLinearInTransformer: false,
  admInChannels: null,
};

export const SDXL_UNET: UnetArch = {
  inChannels: 4,
  outChannels: 4,
  modelChannels: 320,
  channelMult: [1, 2, 4],
  numResBlocks: [2, 2, 2],
  transformerDepth: [0, 2, 10],
  transformerDepthOutput: [0, 0, 0, 2, 2, 2, 10, 10, 10],
  transformerDepthMiddle: 10,
  contextDim: 2048,
  useLinearInTransformer: true,
  admInChannels: 2816,
};

/** Where a block sits, in the terms both naming schemes are derived from. */
export type BlockPlace =
  | { side: 'input'; level: number; index: number }
  | { side: 'middle'; index: number }
  | { side: 'output'; level: number; index: number };

export type UnetBlock =
  | { kind: 'time_embed' | 'label_emb' | 'conv_in' | 'out'; ldm: string; params: Array<[string, number[]]> }
  | { kind: 'resnet' | 'attention'; ldm: string; place: BlockPlace; params: Array<[string, number[]]> }
  | { kind: 'downsample' | 'upsample'; ldm: string; level: number; params: Array<[string, number[]]> };

function resnetParams(cin: number, cout: number, embDim: number): Array<[string, number[]]> {
  const p: Array<[string, number[]]> = [
    ['in_layers.0.weight', [cin]],
    ['in_layers.0.bias', [cin]],
    ['in_layers.2.weight', [cout, cin, 3, 3]],
    ['in_layers.2.bias', [cout]],
    ['emb_layers.1.weight', [cout, embDim]],
    ['emb_layers.1.bias', [cout]],
    ['out_layers.0.weight', [cout]],
    ['out_layers.0.bias', [cout]],
    ['out_layers.3.weight', [cout, cout, 3, 3]],
    ['out_layers.3.bias', [cout]],
  ];
  if (cin !== cout) p.push(['skip_connection.weight', [cout, cin, 1, 1]], ['skip_connection.bias', [cout]]);
  return p;
}

function transformerParams(ch: number, depth: number, arch: UnetArch): Array<[string, number[]]> {
  // SD/SDXL pick heads × head width = channels, so every projection is square in `ch`.
  const proj = arch.useLinearInTransformer ? [ch, ch] : [ch, ch, 1, 1];
  const p: Array<[string, number[]]> = [
    ['norm.weight', [ch]],
    ['norm.bias', [ch]],
    ['proj_in.weight', proj],
    ['proj_in.bias', [ch]],
  ];
  for (let d = 0; d < depth; d++) {
    const t = `transformer_blocks.${d}.`;
    for (const a of ['attn1', 'attn2']) {
      const kv = a === 'attn1' ? ch : arch.contextDim;
      p.push(
        [`${t}${a}.to_q.weight`, [ch, ch]],
        [`${t}${a}.to_k.weight`, [ch, kv]],
        [`${t}${a}.to_v.weight`, [ch, kv]],
        [`${t}${a}.to_out.0.weight`, [ch, ch]],
        [`${t}${a}.to_out.0.bias`, [ch]],
      );
    }
    // GEGLU: one projection yields both the value and the gate, hence 2 × (4·ch).
    p.push(
      [`${t}ff.net.0.proj.weight`, [8 * ch, ch]],
      [`${t}ff.net.0.proj.bias`, [8 * ch]],
      [`${t}ff.net.2.weight`, [ch, 4 * ch]],
      [`${t}ff.net.2.bias`, [ch]],
    );
    for (const n of ['norm1', 'norm2', 'norm3']) p.push([`${t}${n}.weight`, [ch]], [`${t}${n}.bias`, [ch]]);
  }
  p.push(['proj_out.weight', proj], ['proj_out.bias', [ch]]);
  return p;
}

function conv3(ch: number): Array<[string, number[]]> {
  return [
    ['weight', [ch, ch, 3, 3]],
    ['bias', [ch]],
  ];
}

/** The UNet as openaimodel.UNetModel builds it, block by block, with LDM module paths (no prefix). */
export function unetBlocks(arch: UnetArch): UnetBlock[] {
  const levels = arch.channelMult.length;
  if (arch.numResBlocks.length !== levels || arch.transformerDepth.length !== levels) {
    throw new Error('UNet arch: channelMult, numResBlocks and transformerDepth need one entry per level');
  }
  const outputBlocks = arch.numResBlocks.reduce((a, n) => a + n + 1, 0);
  if (arch.transformerDepthOutput.length !== outputBlocks) {
    throw new Error(`UNet arch: transformerDepthOutput needs ${outputBlocks} entries (one per output block)`);
  }
  const C = arch.modelChannels;
  const emb = 4 * C;
  const blocks: UnetBlock[] = [];
  blocks.push({
    kind: 'time_embed',
    ldm: 'time_embed',
    params: [
      ['0.weight', [emb, C]],
      ['0.bias', [emb]],
      ['2.weight', [emb, emb]],
      ['2.bias', [emb]],
    ],
  });
  if (arch.admInChannels !== null) {
    blocks.push({
      kind: 'label_emb',
      ldm: 'label_emb.0',
      params: [
        ['0.weight', [emb, arch.admInChannels]],
        ['0.bias', [emb]],
        ['2.weight', [emb, emb]],
        ['2.bias', [emb]],
      ],
    });
  }
  blocks.push({
    kind: 'conv_in',
    ldm: 'input_blocks.0.0',
    params: [
      ['weight', [C, arch.inChannels, 3, 3]],
      ['bias', [C]],
    ],
  });

  // Channel count of every input-block output, consumed by the output side's skip concatenations.
  const skips = [C];
  let ch = C;
  let n = 1;
  for (let level = 0; level < levels; level++) {
    const cout = arch.channelMult[level]! * C;
    for (let j = 0; j < arch.numResBlocks[level]!; j++, n++) {
      const place: BlockPlace = { side: 'input', level, index: j };
      blocks.push({ kind: 'resnet', ldm: `input_blocks.${n}.0`, place, params: resnetParams(ch, cout, emb) });
      ch = cout;
      const depth = arch.transformerDepth[level]!;
      if (depth > 0) blocks.push({ kind: 'attention', ldm: `input_blocks.${n}.1`, place, params: transformerParams(ch, depth, arch) });
      skips.push(ch);
    }
    if (level !== levels - 1) {
      blocks.push({ kind: 'downsample', ldm: `input_blocks.${n}.0.op`, level, params: conv3(ch) });
      skips.push(ch);
      n++;
    }
  }

  blocks.push({ kind: 'resnet', ldm: 'middle_block.0', place: { side: 'middle', index: 0 }, params: resnetParams(ch, ch, emb) });
  if (arch.transformerDepthMiddle > 0) {
    const place: BlockPlace = { side: 'middle', index: 0 };
    blocks.push({ kind: 'attention', ldm: 'middle_block.1', place, params: transformerParams(ch, arch.transformerDepthMiddle, arch) });
    blocks.push({ kind: 'resnet', ldm: 'middle_block.2', place: { side: 'middle', index: 1 }, params: resnetParams(ch, ch, emb) });
  }

  const depthsLeft = [...arch.transformerDepthOutput];
  n = 0;
  for (let level = levels - 1; level >= 0; level--) {
    const cout = arch.channelMult[level]! * C;
    const count = arch.numResBlocks[level]! + 1;
    for (let j = 0; j < count; j++, n++) {
      const place: BlockPlace = { side: 'output', level, index: j };
      const cin = ch + skips.pop()!;
      blocks.push({ kind: 'resnet', ldm: `output_blocks.${n}.0`, place, params: resnetParams(cin, cout, emb) });
      ch = cout;
      const depth = depthsLeft.pop()!;
      if (depth > 0) blocks.push({ kind: 'attention', ldm: `output_blocks.${n}.1`, place, params: transformerParams(ch, depth, arch) });
      if (level > 0 && j === count - 1) {
        blocks.push({ kind: 'upsample', ldm: `output_blocks.${n}.${depth > 0 ? 2 : 1}.conv`, level, params: conv3(ch) });
      }
    }
  }
  blocks.push({
    kind: 'out',
    ldm: 'out',
    params: [
      ['0.weight', [C]],
      ['0.bias', [C]],
      ['2.weight', [arch.outChannels, C, 3, 3]],
      ['2.bias', [arch.outChannels]],
    ],
  });
  return blocks;
}

/** Every UNet parameter of `arch` with its shape, keyed as in single-file checkpoints. */
export function unetKeyShapes(arch: UnetArch, prefix = UNET_PREFIX): Map<string, number[]> {
  const table = new Map<string, number[]>();
  for (const b of unetBlocks(arch)) for (const [name, shape] of b.params) table.set(`${prefix}${b.ldm}.${name}`, shape);
  return table;
}

export function sd15KeyShapes(): Map<string, number[]> {
  return unetKeyShapes(SD15_UNET);
}

export function sdxlKeyShapes(): Map<string, number[]> {
  return unetKeyShapes(SDXL_UNET);
}

/** A checkpoint's key→shape table straight from its header (no tensor data is read). */
export function keyShapesOf(file: SafetensorsFile): Map<string, number[]> {
  const table = new Map<string, number[]>();
  for (const [name, info] of file.tensors) table.set(name, [...info.shape]);
  return table;
}

function countTransformerBlocks(table: KeyShapeTable, modulePrefix: string): number {
  let depth = 0;
  while (table.has(`${modulePrefix}transformer_blocks.${depth}.attn1.to_q.weight`)) depth++;
  return depth;
}

/**
 * Recovers the architecture of the UNet stored under `prefix` in a checkpoint table, or undefined when the
 * table holds no recognisable UNet. Inference follows the block sequence, so any level count, width,
 * res-block count or attention placement is handled.
 */
export function inferUnetArch(table: KeyShapeTable, prefix = UNET_PREFIX): UnetArch | undefined {
  const shape = (k: string) => table.get(prefix + k);
  const convIn = shape('input_blocks.0.0.weight');
  const convOut = shape('out.2.weight');
  if (!convIn || convIn.length !== 4 || !convOut) return undefined;
  const C = convIn[0]!;
  const channelMult: number[] = [];
  const numResBlocks: number[] = [];
  const transformerDepth: number[] = [];
  let contextDim = 0;
  let linear = false;
  const noteAttention = (modulePrefix: string) => {
    const pin = shape(`${modulePrefix}proj_in.weight`);
    if (pin) linear = pin.length === 2;
    const k = shape(`${modulePrefix}transformer_blocks.0.attn2.to_k.weight`);
    if (k) contextDim = k[1]!;
  };

  let level = 0;
  for (let n = 1; ; n++) {
    if (table.has(`${prefix}input_blocks.${n}.0.op.weight`)) {
      level++;
      continue;
    }
    const conv = shape(`input_blocks.${n}.0.in_layers.2.weight`);
    if (!conv) break;
    if (numResBlocks[level] === undefined) {
      numResBlocks[level] = 0;
      channelMult[level] = conv[0]! / C;
      const ap = `input_blocks.${n}.1.`;
      transformerDepth[level] = countTransformerBlocks(table, prefix + ap);
      if (transformerDepth[level]! > 0) noteAttention(ap);
    }
    numResBlocks[level]!++;
  }
  const levels = channelMult.length;
  if (levels === 0 || numResBlocks.length !== levels) return undefined;

  const transformerDepthMiddle = countTransformerBlocks(table, `${prefix}middle_block.1.`);
  if (transformerDepthMiddle > 0) noteAttention('middle_block.1.');
  const outputBlocks = numResBlocks.reduce((a, r) => a + r + 1, 0);
  const byOutputBlock: number[] = [];
  for (let n = 0; n < outputBlocks; n++) {
    if (!table.has(`${prefix}output_blocks.${n}.0.in_layers.2.weight`)) return undefined;
    const d = countTransformerBlocks(table, `${prefix}output_blocks.${n}.1.`);
    if (d > 0) noteAttention(`output_blocks.${n}.1.`);
    byOutputBlock.push(d);
  }
  const adm = shape('label_emb.0.0.weight');
  return {
    inChannels: convIn[1]!,
    outChannels: convOut[0]!,
    modelChannels: C,
    channelMult,
    numResBlocks,
    transformerDepth,
    transformerDepthOutput: byOutputBlock.reverse(),
    transformerDepthMiddle,
    contextDim,
    useLinearInTransformer: linear,
    admInChannels: adm ? adm[1]! : null,
  };
}

export type UnetFamily = 'sd15' | 'sdxl' | 'custom';

/** Family by level count: SD1.x/2.x UNets have 4 levels, SDXL's has 3. */
export function familyOfLevels(levels: number): UnetFamily {
  return levels === 4 ? 'sd15' : levels === 3 ? 'sdxl' : 'custom';
}

export function familyLabel(family: UnetFamily, levels: number): string {
  return family === 'sd15' ? 'SD1.5' : family === 'sdxl' ? 'SDXL' : `a ${levels}-level UNet`;
}
