import type { OpName } from '../ir.js';
import type { GradRule } from './types.js';

/**
 * Ops that only inference-time UNet patches use (bislerp, FreeU_V2's min-max, HyperTile's run-time tiling).
 * Training graphs never contain them, so asking for their gradient is a programming error worth a clear message.
 */
const refuse =
  (op: OpName): GradRule =>
  () => {
    throw new Error(`autodiff: "${op}" is an inference-only op (UNet patches); it has no gradient rule`);
  };

export const INFERENCE_RULES = {
  acos: refuse('acos'),
  where: refuse('where'),
  reduce_max: refuse('reduce_max'),
  reshape_to: refuse('reshape_to'),
} satisfies Partial<Record<OpName, GradRule>>;

export const INFERENCE_ONLY_REASON = 'inference-only op of UNet patches (see rules-inference.ts)';
