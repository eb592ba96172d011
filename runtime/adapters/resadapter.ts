/**
 * ResAdapter loading: a kohya-format conv LoRA on the UNet's down/upsamplers plus replacement GroupNorm
 * weights for every resnet block, mapped onto a checkpoint's keys.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { SafetensorsFile } from '../safetensors/index.js';
import {
  UNET_PREFIX,
  familyLabel,
  familyOfLevels,
  inferUnetArch,
  type KeyShapeTable,
  type UnetFamily,
} from './arch-tables.js';
import { unetDiffusersToLdm } from './keymap.js';
import { parseLora, type LoraPatch, type TensorSource } from './lora-format.js';

/** Current release names first, then the names of the first public release. */
export const RESADAPTER_LORA_NAMES = ['pytorch_lora_weights.safetensors', 'resolution_lora.safetensors'] as const;
export const RESADAPTER_NORM_NAMES = ['diffusion_pytorch_model.safetensors', 'resolution_normalization.safetensors'] as const;

export interface ResAdapterFiles {
  lora: string;
  norm?: string;
}

export interface ResAdapterShape {
  family: UnetFamily;
  /** UNet levels the adapter was trained for; undefined when its tensor names do not reveal them. */
  levels: number | undefined;
  /** Channel width of the first level (320 for the released adapters). */
  baseChannels: number | undefined;
}

export interface ResAdapter extends ResAdapterShape {
  files: ResAdapterFiles;
  patches: LoraPatch[];
  /** Replacement GroupNorm tensors, by full checkpoint key. */
  norms: Map<string, Float32Array>;
  rank: number;
  alpha: number | undefined;
  warnings: string[];
}

export class ResAdapterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ResAdapterError';
  }
}

function isDir(p: string): boolean {
  return existsSync(p) && statSync(p).isDirectory();
}

function looksLikeLora(path: string): boolean {
  return SafetensorsFile.open(path)
    .keys()
    .some((k) => /lora/.test(k));
}

/**
 * Finds the LoRA and norm files of a ResAdapter given as its folder, one file, or a list of files. Files
 * with unfamiliar names are told apart by content (LoRA tensors carry `lora` in their names).
 */
export function resolveResAdapterFiles(source: string | readonly string[] | ResAdapterFiles): ResAdapterFiles {
  if (typeof source === 'object' && !Array.isArray(source)) return source as ResAdapterFiles;
  const paths = typeof source === 'string' ? [source] : (source as readonly string[]);
  let lora: string | undefined;
  let norm: string | undefined;
  for (const p of paths) {
    if (isDir(p)) {
      lora ??= RESADAPTER_LORA_NAMES.map((n) => join(p, n)).find(existsSync);
      norm ??= RESADAPTER_NORM_NAMES.map((n) => join(p, n)).find(existsSync);
      continue;
    }
    if (!existsSync(p)) throw new ResAdapterError(`ResAdapter file not found: ${p}`);
    const name = basename(p);
    const isLora = (RESADAPTER_LORA_NAMES as readonly string[]).includes(name)
      ? true
      : (RESADAPTER_NORM_NAMES as readonly string[]).includes(name)
        ? false
        : looksLikeLora(p);
    if (isLora) {
      if (lora) throw new ResAdapterError(`two ResAdapter LoRA files given: ${lora} and ${p}`);
      lora = p;
    } else {
      if (norm) throw new ResAdapterError(`two ResAdapter normalization files given: ${norm} and ${p}`);
      norm = p;
    }
  }
  if (!lora) {
    throw new ResAdapterError(
      `no ResAdapter LoRA file (${RESADAPTER_LORA_NAMES.join(' or ')}) in ${paths.join(', ')}`,
    );
  }
  return norm ? { lora, norm } : { lora };
}

/**
 * What a ResAdapter was trained for, from its tensor names and shapes alone: a UNet with L levels has
 * L-1 downsamplers and upsamplers and resnets in down_blocks.0..L-1.
 */
export function detectResAdapterShape(lora: TensorSource, norm?: TensorSource): ResAdapterShape {
  let maxDown = -1;
  let maxSampler = -1;
  let baseChannels: number | undefined;
  for (const k of lora.keys()) {
    const m = /(?:^|[._])(down|up)_?blocks[._](\d+)[._](?:down|up)samplers/.exec(k);
    if (m) maxSampler = Math.max(maxSampler, Number(m[2]));
    if (/down_?blocks[._]0[._]downsamplers[._]0[._]conv\.(?:lora_down|lora_A)/.test(k)) baseChannels = lora.info(k).shape[1];
  }
  if (norm) {
    for (const k of norm.keys()) {
      const m = /(?:^|\.)down_blocks\.(\d+)\.resnets/.exec(k);
      if (m) maxDown = Math.max(maxDown, Number(m[1]));
      if (/down_blocks\.0\.resnets\.0\.norm1\.weight$/.test(k)) baseChannels ??= norm.info(k).shape[0];
    }
  }
  if (maxDown < 0 && maxSampler < 0) return { family: 'custom', levels: undefined, baseChannels };
  const levels = Math.max(maxDown + 1, maxSampler + 2);
  return { family: familyOfLevels(levels), levels, baseChannels };
}

/**
 * Loads a ResAdapter for the model whose checkpoint key→shape table is `model`. Refuses adapters made for
 * another UNet family; every tensor must map onto an existing layer with the right shape.
 */
export function loadResAdapter(source: string | readonly string[] | ResAdapterFiles, model: KeyShapeTable): ResAdapter {
  const files = resolveResAdapterFiles(source);
  const warnings: string[] = [];
  const loraFile = SafetensorsFile.open(files.lora);
  const normFile = files.norm ? SafetensorsFile.open(files.norm) : undefined;
  if (!normFile) {
    warnings.push(
      `ResAdapter ${files.lora}: no normalization file (${RESADAPTER_NORM_NAMES.join(' or ')}) found; only the LoRA part is applied`,
    );
  }

  const arch = inferUnetArch(model);
  if (!arch) throw new ResAdapterError('the model has no recognisable UNet (model.diffusion_model.*) to apply a ResAdapter to');
  const shape = detectResAdapterShape(loraFile, normFile);
  const modelLevels = arch.channelMult.length;
  const modelFamily = familyOfLevels(modelLevels);
  const levelsDiffer = shape.levels !== undefined && shape.levels !== modelLevels;
  if (levelsDiffer || (shape.baseChannels !== undefined && shape.baseChannels !== arch.modelChannels)) {
    const what = (f: UnetFamily, levels: number | undefined, ch: number | undefined) =>
      levels === undefined
        ? `a UNet of width ${ch}`
        : `${familyLabel(f, levels)} (${levels} UNet levels${ch === undefined ? '' : `, width ${ch}`})`;
    throw new ResAdapterError(
      `ResAdapter ${files.lora} is made for ${what(shape.family, shape.levels, shape.baseChannels)} but the model is ` +
        `${what(modelFamily, modelLevels, arch.modelChannels)}; use a ResAdapter built for this model family`,
    );
  }

  const { patches } = parseLora(loraFile, model);
  const foreign = patches.find((p) => p.component !== 'unet');
  if (foreign) throw new ResAdapterError(`ResAdapter ${files.lora}: LoRA module "${foreign.source}" is not a UNet layer`);

  const norms = new Map<string, Float32Array>();
  if (normFile) {
    const names = unetDiffusersToLdm(arch);
    for (const k of normFile.keys()) {
      const ldm = names.get(k.replace(/^unet\./, ''));
      const key = ldm === undefined ? undefined : UNET_PREFIX + ldm;
      const want = key === undefined ? undefined : model.get(key);
      if (!key || !want) throw new ResAdapterError(`ResAdapter ${files.norm}: key "${k}" matches no UNet layer of this model`);
      const got = normFile.info(k).shape;
      if (got.length !== want.length || got.some((d, i) => d !== want[i])) {
        throw new ResAdapterError(`ResAdapter ${files.norm}: key "${k}" has shape [${got.join(', ')}] but ${key} is [${want.join(', ')}]`);
      }
      norms.set(key, normFile.readFloat32(k));
    }
  }

  const ranks = new Set(patches.map((p) => p.rank));
  const alphas = new Set(patches.map((p) => p.alpha));
  return {
    ...shape,
    files,
    patches,
    norms,
    rank: patches.length ? Math.max(...ranks) : 0,
    alpha: alphas.size === 1 ? [...alphas][0] : undefined,
    warnings,
  };
}
