import { SafetensorsFile } from '../safetensors/reader.js';
import { MODEL_FAMILIES, detectModelFamily, type ModelFamilyId } from './families/registry.js';
import { WeightSet } from './weights.js';

/** What a file holds: a registered diffusion family's id, or one of the other kinds of model file. */
export type ModelFamily = ModelFamilyId | 'controlnet' | 'vae' | 'unknown';

export class UnsupportedModelError extends Error {
  constructor(
    readonly file: string,
    readonly family: ModelFamily,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'UnsupportedModelError';
  }
}

const UNET = 'model.diffusion_model.';
const VAE = 'first_stage_model.';
const CLIP_SD1 = 'cond_stage_model.transformer.text_model.';
const CLIP_SD1_OLD = 'cond_stage_model.transformer.';

/** Recognises what a safetensors file holds from its key layout. */
export function detectFamily(file: SafetensorsFile): ModelFamily {
  const has = (k: string) => file.has(k);
  // Diffusion checkpoints: the family registry, where each family says which keys are its own.
  const family = detectModelFamily(has);
  if (family) return family.id;
  if (has('control_model.input_hint_block.0.weight') || has('input_hint_block.0.weight')) return 'controlnet';
  if (has('encoder.conv_in.weight') && has('decoder.conv_in.weight')) return 'vae';
  return 'unknown';
}

/** The parts of a single-file SD1.x checkpoint, each a view over the one lazily read file. */
export interface Sd1Checkpoint {
  path: string;
  file: SafetensorsFile;
  unet: WeightSet;
  vae: WeightSet;
  clip: WeightSet;
}

const OTHER_FILE_NAMES: Record<string, string> = { controlnet: 'a ControlNet', vae: 'a standalone VAE', unknown: 'an unrecognised model' };

/**
 * Opens a single-file SD1.x checkpoint (F32/F16/BF16). Unknown extras (EMA weights, betas, position_ids...)
 * are simply never read. Other families are refused with a message naming what the file is.
 */
export function openSd1Checkpoint(path: string): Sd1Checkpoint {
  const file = SafetensorsFile.open(path);
  const family = detectFamily(file);
  if (family !== 'sd1') {
    const notLoadable = MODEL_FAMILIES.some((f) => f.id === family && !f.loadable);
    throw new UnsupportedModelError(path, family, `this is ${familyName(family)} file, not a Stable Diffusion 1.x checkpoint${notLoadable ? ' (not supported yet)' : ''}`);
  }
  const clipPrefix = file.has(`${CLIP_SD1}final_layer_norm.weight`) ? CLIP_SD1 : CLIP_SD1_OLD;
  for (const [what, key] of [
    ['VAE', `${VAE}decoder.conv_in.weight`],
    ['text encoder', `${clipPrefix}final_layer_norm.weight`],
  ] as const) {
    if (!file.has(key)) throw new UnsupportedModelError(path, family, `checkpoint has no ${what} (missing key "${key}")`);
  }
  return { path, file, unet: new WeightSet(file, UNET), vae: new WeightSet(file, VAE), clip: new WeightSet(file, clipPrefix) };
}

/** How messages name a file's kind: a registered family by its label, other model files by what they are. */
export function familyName(f: ModelFamily): string {
  return OTHER_FILE_NAMES[f] ?? MODEL_FAMILIES.find((m) => m.id === f)?.label ?? f;
}
