/**
 * Every model family ResFlow knows, in detection order: the first whose `matches` accepts a checkpoint's keys
 * is its family. Adding a family = its folder beside this file + one line here.
 */
import type { SafetensorsFile } from '../../safetensors/reader.js';
import { SD1_FAMILY } from './sd1/index.js';
import { SD2_FAMILY } from './sd2/index.js';
import { SDXL_REFINER_FAMILY } from './sdxl-refiner/family.js';
import { SDXL_FAMILY } from './sdxl/index.js';
import type { ModelFamily, ModelFamilyId } from './types.js';

// The refiner before the base (both have bigG); SD1 last, as any LDM UNet without another family's encoders.
export const MODEL_FAMILIES: readonly ModelFamily[] = [SDXL_REFINER_FAMILY, SDXL_FAMILY, SD2_FAMILY, SD1_FAMILY];

export function modelFamily(id: ModelFamilyId): ModelFamily {
  const f = MODEL_FAMILIES.find((x) => x.id === id);
  if (!f) throw new Error(`unknown model family "${id}"`);
  return f;
}

/** The family of a checkpoint from its keys, or undefined for files that are no diffusion checkpoint. */
export function detectModelFamily(keys: Pick<SafetensorsFile, 'has'> | ((key: string) => boolean)): ModelFamily | undefined {
  const has = typeof keys === 'function' ? keys : (k: string) => keys.has(k);
  return MODEL_FAMILIES.find((f) => f.matches(has));
}

export type { ModelFamily, ModelFamilyId } from './types.js';
