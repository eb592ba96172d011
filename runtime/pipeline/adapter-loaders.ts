/**
 * Loading LoRA files and ResAdapters onto patched-model handles, with the node semantics of ComfyUI's
 * LoraLoader (`load_lora_for_models`) and ComfyUI-ResAdapter's ResAdapterLoader.
 */
import { basename, dirname } from 'node:path';
import { keyShapesOf, type KeyShapeTable } from '../adapters/arch-tables.js';
import { parseLora, type ParsedLora, type TensorSource } from '../adapters/lora-format.js';
import { resolveResAdapterFiles, type ResAdapter, type ResAdapterFiles } from '../adapters/resadapter.js';
import type { SafetensorsFile } from '../safetensors/index.js';
import { cachedLora, cachedResAdapter } from './adapter-cache.js';
import { PatchedClip, PatchedUnet, splitPatches } from './patched-model.js';

// Header-only tables, asked for on every adapter load of the same checkpoint.
const tables = new WeakMap<SafetensorsFile, Map<string, number[]>>();

/** Key→shape table of a checkpoint file, read once from its header. */
export function checkpointKeyShapes(file: SafetensorsFile): Map<string, number[]> {
  let t = tables.get(file);
  if (!t) tables.set(file, (t = keyShapesOf(file)));
  return t;
}

/** The table a LoRA is resolved against: both models' files (usually one checkpoint). */
function tableFor(model: PatchedUnet | undefined, clip: PatchedClip | undefined): KeyShapeTable {
  const files = new Set<SafetensorsFile>();
  if (model) files.add(model.base.weights.file);
  if (clip) files.add(clip.base.weights.file);
  if (files.size === 0) throw new Error('a LoRA needs a model or a text encoder to apply to');
  if (files.size === 1) return checkpointKeyShapes([...files][0]!);
  return new Map([...files].flatMap((f) => [...checkpointKeyShapes(f)]));
}

export interface LoraLoadOptions {
  /** Adapter id on the handles (default: the label). */
  id?: string;
  /** Default: the file name. */
  label?: string;
}

export interface LoraLoadResult {
  model: PatchedUnet | undefined;
  clip: PatchedClip | undefined;
  /** Patches that had nowhere to go (a text-encoder LoRA given no CLIP, as with LoraLoaderModelOnly). */
  warnings: string[];
}

/**
 * LoraLoader: the UNet part of the LoRA goes onto `model` at `strengthModel`, the text-encoder part onto
 * `clip` at `strengthClip`. Inputs are returned unchanged when both strengths are 0, as the node does. A
 * LoRA key this model cannot take is an error (ComfyUI only warns; a half-applied LoRA is hard to notice).
 */
export function loadLoraForModels(
  model: PatchedUnet | undefined,
  clip: PatchedClip | undefined,
  source: string | TensorSource | ParsedLora,
  strengthModel: number,
  strengthClip: number,
  opts: LoraLoadOptions = {},
): LoraLoadResult {
  const label = opts.label ?? (typeof source === 'string' ? basename(source) : 'lora');
  if (strengthModel === 0 && strengthClip === 0) return { model, clip, warnings: [] };
  // Files go through the parsed-adapter cache: a strength change re-runs this without re-reading the file.
  const parsed =
    typeof source === 'string' ? cachedLora(source, tableFor(model, clip)) : 'patches' in source ? source : parseLora(source, tableFor(model, clip));
  const { unet, clip: te } = splitPatches(parsed.patches);
  const warnings: string[] = [];
  const id = opts.id ?? label;
  let m = model;
  let c = clip;
  if (unet.length) {
    if (m) m = m.withAdapter({ id, label, patches: unet, strength: strengthModel });
    else warnings.push(`${label}: ${unet.length} UNet modules not applied (no model given)`);
  }
  if (te.length) {
    if (c) c = c.withAdapter({ id, label, patches: te, strength: strengthClip });
    else warnings.push(`${label}: ${te.length} text-encoder modules not applied (no CLIP given)`);
  }
  return { model: m, clip: c, warnings };
}

export interface ResAdapterApplyOptions {
  /** Blend of the replacement norms: 1 (default) replaces them, as ComfyUI-ResAdapter does. */
  normStrength?: number;
  /** Which half of the adapter to apply: both (default), only the resampler LoRA, or only the GroupNorms (the paper's ablations). */
  parts?: ResAdapterParts;
  id?: string;
  label?: string;
}

export type ResAdapterParts = 'all' | 'lora' | 'norms';

export interface ResAdapterApplyResult {
  model: PatchedUnet;
  adapter: ResAdapter;
  warnings: string[];
}

function adapterLabel(files: ResAdapterFiles): string {
  return basename(dirname(files.lora));
}

/**
 * ResAdapterLoader: norms replaced, LoRA merged at `strength`; strength 0 leaves the model untouched. Refuses
 * an adapter made for another UNet family with loadResAdapter's message. An already loaded `ResAdapter`
 * may be passed instead of files (the executor caches them by path).
 */
export function applyResAdapter(
  model: PatchedUnet,
  source: string | readonly string[] | ResAdapterFiles | ResAdapter,
  strength: number,
  opts: ResAdapterApplyOptions = {},
): ResAdapterApplyResult {
  const adapter = isLoaded(source) ? source : cachedResAdapter(resolveResAdapterFiles(source), checkpointKeyShapes(model.base.weights.file));
  const label = opts.label ?? adapterLabel(isLoaded(source) ? source.files : resolveResAdapterFiles(source));
  const next = model.withAdapter({
    id: opts.id ?? label,
    label,
    patches: opts.parts === 'norms' ? [] : adapter.patches,
    ...(opts.parts === 'lora' ? {} : { norms: adapter.norms }),
    strength,
    ...(opts.normStrength === undefined ? {} : { normStrength: opts.normStrength }),
  });
  return { model: next, adapter, warnings: adapter.warnings };
}

function isLoaded(s: unknown): s is ResAdapter {
  return typeof s === 'object' && s !== null && 'patches' in s && 'norms' in s;
}
