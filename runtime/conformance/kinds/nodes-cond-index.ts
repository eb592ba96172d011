import type { CaseKind } from './types.js';
import { conditioningKind } from './nodes-cond.js';
import { TENSOR_OP_KINDS } from './nodes-tensor-ops.js';
import { inpaintKind } from './nodes-inpaint.js';

/** Kinds of ../conformance-nodes cases: conditioning composition, masks, latent and image ops, inpainting. */
export const NODES_COND_KINDS: CaseKind[] = [conditioningKind, inpaintKind, ...TENSOR_OP_KINDS];
