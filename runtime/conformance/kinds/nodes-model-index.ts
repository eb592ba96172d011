import type { CaseKind } from './types.js';
import { modelPatchesKind } from './model-patches.js';
import { clipMergeKind, modelMergeKind } from './merges.js';
import { upscaleModelKind } from './upscale-model.js';
import { hypernetworkKind } from './hypernetwork.js';

/** Kinds of ../conformance-nodes cases about models: patches, merges, upscale models, hypernetworks. */
export const NODES_MODEL_KINDS: CaseKind[] = [modelPatchesKind, modelMergeKind, clipMergeKind, upscaleModelKind, hypernetworkKind];
