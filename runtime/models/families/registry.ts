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
const FAMILIES: ModelFamily[] = [SDXL_REFINER_FAMILY, SDXL_FAMILY, SD2_FAMILY, SD1_FAMILY];
export const MODEL_FAMILIES: readonly ModelFamily[] = FAMILIES;

/**
 * Adds a family ahead of those registered so far in detection order (a more specific layout before the
 * fallbacks); returns the call that removes it again.
 */
export function registerModelFamily(family: ModelFamily): () => void {
  if (FAMILIES.some((f) => f.id === family.id)) throw new Error(`model family "${family.id}" is registered already`);
  FAMILIES.unshift(family);
  return () => {
    const i = FAMILIES.indexOf(family);
    if (i >= 0) FAMILIES.splice(i, 1);
  };
}

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
