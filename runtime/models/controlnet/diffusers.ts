import type { UnetArch } from '../../adapters/arch-tables.js';
import { unetDiffusersToLdm } from '../../adapters/keymap.js';
import type { SafetensorsFile } from '../../safetensors/reader.js';

/** diffusers ControlNetModel files are recognised by their hint-encoder input conv. */
export const DIFFUSERS_CONTROLNET_KEY = 'controlnet_cond_embedding.conv_in.weight';

const count = (keys: string[], re: RegExp): number => new Set(keys.map((k) => re.exec(k)?.[1]).filter((x) => x !== undefined)).size;

/** The UNet-half architecture of a diffusers ControlNet, read from its keys and shapes (any widths and depths). */
export function controlNetArchFromDiffusers(file: SafetensorsFile): UnetArch {
  const keys = file.keys();
  const shape = (k: string) => file.info(k).shape;
  const mc = shape('conv_in.weight')[0]!;
  const levels = count(keys, /^down_blocks\.(\d+)\./);
  const channelMult: number[] = [];
  const numResBlocks: number[] = [];
  const transformerDepth: number[] = [];
  for (let l = 0; l < levels; l++) {
    const res = count(keys, new RegExp(`^down_blocks\\.${l}\\.resnets\\.(\\d+)\\.`));
    numResBlocks.push(res);
    channelMult.push(shape(`down_blocks.${l}.resnets.0.conv1.weight`)[0]! / mc);
    transformerDepth.push(count(keys, new RegExp(`^down_blocks\\.${l}\\.attentions\\.0\\.transformer_blocks\\.(\\d+)\\.`)));
  }
  const middle = count(keys, /^mid_block\.attentions\.0\.transformer_blocks\.(\d+)\./);
  const attnK = keys.find((k) => /attn2\.to_k\.weight$/.test(k));
  const projIn = keys.find((k) => /\.proj_in\.weight$/.test(k));
  const adm = file.has('add_embedding.linear_1.weight') ? shape('add_embedding.linear_1.weight')[1]! : null;
  // The output half is not part of a ControlNet; a mirror of the input side keeps the arch well-formed.
  const transformerDepthOutput = transformerDepth.flatMap((d, l) => new Array<number>(numResBlocks[l]! + 1).fill(d));
  return {
    inChannels: shape('conv_in.weight')[1]!,
    outChannels: shape('conv_in.weight')[1]!,
    modelChannels: mc,
    channelMult,
    numResBlocks,
    transformerDepth,
    transformerDepthOutput,
    transformerDepthMiddle: middle,
    contextDim: attnK ? shape(attnK)[1]! : 0,
    useLinearInTransformer: projIn ? shape(projIn).length === 2 : false,
    admInChannels: adm,
  };
}

/** LDM (cldm.ControlNet) name → diffusers name for every tensor of a diffusers ControlNet file. */
export function controlNetDiffusersRenames(file: SafetensorsFile): Map<string, string> {
  const arch = controlNetArchFromDiffusers(file);
  const out = new Map<string, string>();
  for (const [d, l] of unetDiffusersToLdm(arch)) if (file.has(d)) out.set(l, d);
  const fixed: Array<[RegExp, (m: RegExpExecArray) => string]> = [
    [/^add_embedding\.linear_1\.(weight|bias)$/, (m) => `label_emb.0.0.${m[1]}`],
    [/^add_embedding\.linear_2\.(weight|bias)$/, (m) => `label_emb.0.2.${m[1]}`],
    [/^time_embedding\.linear_1\.(weight|bias)$/, (m) => `time_embed.0.${m[1]}`],
    [/^time_embedding\.linear_2\.(weight|bias)$/, (m) => `time_embed.2.${m[1]}`],
    [/^conv_in\.(weight|bias)$/, (m) => `input_blocks.0.0.${m[1]}`],
    [/^controlnet_cond_embedding\.conv_in\.(weight|bias)$/, (m) => `input_hint_block.0.${m[1]}`],
    [/^controlnet_cond_embedding\.blocks\.(\d+)\.(weight|bias)$/, (m) => `input_hint_block.${2 * (Number(m[1]) + 1)}.${m[2]}`],
    [/^controlnet_down_blocks\.(\d+)\.(weight|bias)$/, (m) => `zero_convs.${m[1]}.0.${m[2]}`],
    [/^controlnet_mid_block\.(weight|bias)$/, (m) => `middle_block_out.0.${m[1]}`],
  ];
  const blocks = count(file.keys(), /^controlnet_cond_embedding\.blocks\.(\d+)\./);
  for (const k of file.keys()) {
    if (/^controlnet_cond_embedding\.conv_out\.(weight|bias)$/.test(k)) {
      out.set(`input_hint_block.${2 * (blocks + 1)}.${k.split('.').pop()}`, k);
      continue;
    }
    for (const [re, to] of fixed) {
      const m = re.exec(k);
      if (m) out.set(to(m), k);
    }
  }
  const unmapped = file.keys().filter((k) => ![...out.values()].includes(k));
  if (unmapped.length) throw new Error(`${file.path}: diffusers ControlNet keys with no LDM name: ${unmapped.slice(0, 5).join(', ')}`);
  return out;
}

/**
 * The file seen under LDM names, so the one ControlNet graph builder serves both layouts. Reads go to the
 * original tensors; nothing is copied.
 */
export function renamedView(file: SafetensorsFile, renames: ReadonlyMap<string, string>): SafetensorsFile {
  const tensors = new Map([...renames].map(([to, from]) => [to, file.info(from)]));
  const from = (name: string) => renames.get(name) ?? `\u0000missing:${name}`;
  const view = {
    path: file.path,
    metadata: file.metadata,
    dataStart: file.dataStart,
    fileSize: file.fileSize,
    tensors,
    keys: () => [...tensors.keys()],
    has: (name: string) => tensors.has(name),
    info: (name: string) => file.info(from(name)),
    readBytes: (name: string) => file.readBytes(from(name)),
    readFloat32: (name: string) => file.readFloat32(from(name)),
    readNumbers: (name: string) => file.readNumbers(from(name)),
  };
  // Structural stand-in: WeightSet and the config reader only use the members above.
  return view as unknown as SafetensorsFile;
}
