import type { CaseKind } from './types.js';
import { unetKind } from './unet.js';
import { controlnetKind } from './controlnet.js';
import { clipKind } from './clip.js';
import { rngKind } from './rng.js';
import { vaeKind } from './vae.js';
import { pipelineKind, samplingKind } from './sampling.js';
import { LORA_KINDS } from './lora.js';
import { SDXL_KINDS } from './sdxl-index.js';
import { NODES_MODEL_KINDS } from './nodes-model-index.js';
import { NODES_COND_KINDS } from './nodes-cond-index.js';
import { SAMPLER_KINDS } from './sampler-index.js';

/** Every case kind `resflow conformance` knows, most specific first. */
export const CASE_KINDS: CaseKind[] = [...SDXL_KINDS, controlnetKind, unetKind, clipKind, rngKind, vaeKind, samplingKind, pipelineKind, ...LORA_KINDS, ...NODES_MODEL_KINDS, ...NODES_COND_KINDS, ...SAMPLER_KINDS];
