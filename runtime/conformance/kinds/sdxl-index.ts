import type { CaseKind } from './types.js';
import { sdxlClipKind } from './sdxl-clip.js';
import { SDXL_NEXT_KINDS } from './sdxl-next-index.js';
import { sdxlPipelineKind, sdxlSamplersKind } from './sdxl-sampling.js';
import { sdxlResAdapterKind, sdxlUnetKind } from './sdxl-unet.js';

/**
 * SDXL kinds. They share case names with SD1 kinds and only match cases whose checkpoint is an SDXL file,
 * so they go ahead of the SD1 kinds in CASE_KINDS.
 */
export const SDXL_KINDS: CaseKind[] = [...SDXL_NEXT_KINDS, sdxlResAdapterKind, sdxlUnetKind, sdxlClipKind, sdxlSamplersKind, sdxlPipelineKind];
