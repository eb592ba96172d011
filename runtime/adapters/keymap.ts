/**
 * Name translation between diffusers / Hugging Face module paths (what LoRA trainers and ResAdapter write)
 * and the keys of original single-file checkpoints (what ResFlow loads).
 *
 * The UNet mapping is computed from the block layout of `unetBlocks`, so it follows whatever level count,
 * res-block count and attention placement the model has instead of assuming SD1.5's numbering.
 */
import { MODEL_FAMILIES } from '../models/families/registry.js';
import { UNET_PREFIX, unetBlocks, type BlockPlace, type KeyShapeTable, type UnetArch, type UnetBlock } from './arch-tables.js';

/** LDM resnet sub-module → diffusers ResnetBlock2D sub-module. */
const RESNET_RENAMES: ReadonlyArray<[string, string]> = [
  ['in_layers.0', 'norm1'],
  ['in_layers.2', 'conv1'],
  ['emb_layers.1', 'time_emb_proj'],
  ['out_layers.0', 'norm2'],
  ['out_layers.3', 'conv2'],
  ['skip_connection', 'conv_shortcut'],
];

function diffusersBlockPath(kind: 'resnets' | 'attentions', place: BlockPlace, levels: number): string {
  if (place.side === 'middle') return `mid_block.${kind}.${place.index}`;
  // diffusers numbers up_blocks from the deepest level, the order in which the decoder runs them.
  const block = place.side === 'input' ? `down_blocks.${place.level}` : `up_blocks.${levels - 1 - place.level}`;
  return `${block}.${kind}.${place.index}`;
}

function renameParam(block: UnetBlock, param: string, levels: number): string[] {
  switch (block.kind) {
    case 'time_embed':
      return [param.replace(/^0\./, 'linear_1.').replace(/^2\./, 'linear_2.')].map((p) => `time_embedding.${p}`);
    case 'label_emb': {
      const p = param.replace(/^0\./, 'linear_1.').replace(/^2\./, 'linear_2.');
      // SDXL calls it add_embedding; class-conditioned UNets (SD x4 upscaler) use class_embedding.
      return [`add_embedding.${p}`, `class_embedding.${p}`];
    }
    case 'conv_in':
      return [`conv_in.${param}`];
    case 'out':
      return [param.replace(/^0\./, 'conv_norm_out.').replace(/^2\./, 'conv_out.')];
    case 'downsample':
      return [`down_blocks.${block.level}.downsamplers.0.conv.${param}`];
    case 'upsample':
      return [`up_blocks.${levels - 1 - block.level}.upsamplers.0.conv.${param}`];
    case 'attention':
      return [`${diffusersBlockPath('attentions', block.place, levels)}.${param}`];
    case 'resnet': {
      const rule = RESNET_RENAMES.find(([ldm]) => param.startsWith(`${ldm}.`));
      if (!rule) throw new Error(`keymap: unexpected resnet parameter ${param}`);
      return [`${diffusersBlockPath('resnets', block.place, levels)}.${rule[1]}${param.slice(rule[0].length)}`];
    }
  }
}

// Name maps are asked for per LoRA/adapter load; arch objects are treated as immutable.
const byArch = new WeakMap<UnetArch, Map<string, string>>();

/**
 * diffusers UNet parameter name → LDM parameter name (without the `model.diffusion_model.` prefix), e.g.
 * `down_blocks.1.downsamplers.0.conv.weight` → `input_blocks.6.0.op.weight` for SD1.5.
 */
export function unetDiffusersToLdm(arch: UnetArch): ReadonlyMap<string, string> {
  const cached = byArch.get(arch);
  if (cached) return cached;
  const levels = arch.channelMult.length;
  const map = new Map<string, string>();
  for (const block of unetBlocks(arch)) {
    for (const [param] of block.params) {
      for (const name of renameParam(block, param, levels)) map.set(name, `${block.ldm}.${param}`);
    }
  }
  byArch.set(arch, map);
  return map;
}

/** The same mapping at module level (`down_blocks.0.resnets.0.norm1` → `input_blocks.1.0.in_layers.0`). */
export function unetDiffusersModulesToLdm(arch: UnetArch): Map<string, string> {
  const modules = new Map<string, string>();
  for (const [d, l] of unetDiffusersToLdm(arch)) {
    const m = /^(.*)\.(weight|bias)$/.exec(d);
    const n = /^(.*)\.(weight|bias)$/.exec(l);
    if (m && n) modules.set(m[1]!, n[1]!);
  }
  return modules;
}

/** Checkpoint key of a diffusers UNet parameter name, or undefined when the name is not part of `arch`. */
export function diffusersUnetKey(arch: UnetArch, name: string, prefix = UNET_PREFIX): string | undefined {
  const ldm = unetDiffusersToLdm(arch).get(name);
  return ldm === undefined ? undefined : prefix + ldm;
}

// ---------------------------------------------------------------------------------------------------------
// Text encoders

/**
 * Text encoder slots: `te1` is a checkpoint's first (or only) encoder, `te2` SDXL's OpenCLIP bigG. Kohya writes
 * `lora_te_` (one-encoder models) or `lora_te1_` / `lora_te2_`; both `lora_te_` and `lora_te1_` address te1,
 * as ComfyUI resolves them.
 */
export type TextEncoderSlot = 'te1' | 'te2';

export interface TextEncoderModule {
  slot: TextEncoderSlot;
  /** Hugging Face CLIPTextModel module path, e.g. `text_model.encoder.layers.0.self_attn.q_proj`. */
  hfPath: string;
  /** Checkpoint key of the weight the module's LoRA patches. */
  target: string;
  /** Row range inside `target` when the checkpoint fuses q/k/v into one matrix (OpenCLIP in_proj_weight). */
  rows?: { start: number; count: number };
}

interface EncoderLayout {
  slot: TextEncoderSlot;
  prefix: string;
  naming: 'hf' | 'openclip';
}

let encoderLayouts: { of: string; layouts: EncoderLayout[] } | undefined;

/**
 * Where each slot's encoder lives in the checkpoint layouts we load, with how it is named there: every
 * registered family's text encoders, in the family's order (first te1, second te2). HF paths start at
 * `text_model.`, so a CLIP-layout prefix is cut there (SD1's older files lack that level). Built on first use.
 */
function layouts(): EncoderLayout[] {
  // Rebuilt when a family is registered or removed.
  const of = MODEL_FAMILIES.map((f) => f.id).join();
  if (encoderLayouts?.of === of) return encoderLayouts.layouts;
  const built = MODEL_FAMILIES.flatMap((f) =>
    f.textEncoders.map((te, i): EncoderLayout => ({
      slot: i === 0 ? 'te1' : 'te2',
      prefix: te.layout === 'clip' ? te.prefix.replace(/text_model\.$/, '') : te.prefix,
      naming: te.layout === 'clip' ? 'hf' : 'openclip',
    })),
  );
  encoderLayouts = { of, layouts: built };
  return built;
}

const OPENCLIP_RENAMES: ReadonlyArray<[RegExp, string]> = [
  [/^attn\.out_proj$/, 'self_attn.out_proj'],
  [/^mlp\.c_fc$/, 'mlp.fc1'],
  [/^mlp\.c_proj$/, 'mlp.fc2'],
];

/**
 * Every text-encoder Linear of a checkpoint that a LoRA can address, named as Hugging Face CLIPTextModel
 * modules. Found from the table's keys, so any layer count or width works; OpenCLIP's fused attention
 * input projection yields three row-sliced entries (q, k, v).
 */
export function textEncoderModules(table: KeyShapeTable): TextEncoderModule[] {
  const out: TextEncoderModule[] = [];
  for (const { slot, prefix, naming } of layouts()) {
    for (const [key, shape] of table) {
      if (!key.startsWith(prefix)) continue;
      const rest = key.slice(prefix.length);
      if (naming === 'hf') {
        const m = /^(?:text_model\.)?(encoder\.layers\.\d+\.(?:self_attn\.[qkv]_proj|self_attn\.out_proj|mlp\.fc[12]))\.weight$/.exec(rest);
        if (m) out.push({ slot, hfPath: `text_model.${m[1]}`, target: key });
        continue;
      }
      const m = /^transformer\.resblocks\.(\d+)\.(.+)$/.exec(rest);
      if (!m) continue;
      const layer = `text_model.encoder.layers.${m[1]}.`;
      if (m[2] === 'attn.in_proj_weight') {
        const width = shape[0]! / 3;
        ['q', 'k', 'v'].forEach((p, i) => {
          out.push({ slot, hfPath: `${layer}self_attn.${p}_proj`, target: key, rows: { start: i * width, count: width } });
        });
        continue;
      }
      const mod = /^(.+)\.weight$/.exec(m[2]!);
      const rule = mod && OPENCLIP_RENAMES.find(([re]) => re.test(mod[1]!));
      if (rule) out.push({ slot, hfPath: layer + rule[1], target: key });
    }
  }
  return out;
}

/**
 * Checkpoint target of a Hugging Face CLIP module path for one slot, e.g.
 * ('te1', 'text_model.encoder.layers.0.self_attn.q_proj') →
 * `cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight` on an SD1.x checkpoint.
 */
export function textEncoderTarget(table: KeyShapeTable, slot: TextEncoderSlot, hfPath: string): TextEncoderModule | undefined {
  return textEncoderModules(table).find((m) => m.slot === slot && m.hfPath === hfPath);
}
