import type { OpName } from '../ir.js';
import { ELEMENTWISE_RULES } from './rules-elementwise.js';
import { LINALG_RULES } from './rules-linalg.js';
import { NORM_RULES } from './rules-norm.js';
import { SHAPE_RULES } from './rules-shape.js';
import { INFERENCE_ONLY_REASON, INFERENCE_RULES } from './rules-inference.js';
import type { GradRule } from './types.js';

/** One gradient rule per IR op: the type makes a new op in OPS without a rule a compile error. */
export const GRAD_RULES: Record<OpName, GradRule> = { ...ELEMENTWISE_RULES, ...LINALG_RULES, ...NORM_RULES, ...SHAPE_RULES, ...INFERENCE_RULES };

/**
 * Ops through which no gradient flows to any float input, with the reason. Every other op must have a
 * finite-difference test (test/graph/autodiff-ops.test.ts checks this against OPS).
 */
export const NON_DIFFERENTIABLE: Partial<Record<OpName, string>> = {
  greater: 'boolean output',
  gather: 'gradient w.r.t. the data (embedding table) is not supported; indices are integers',
  concat_grad: 'backward-only op (symbolic concat offsets); no second-order rule',
  acos: INFERENCE_ONLY_REASON,
  where: INFERENCE_ONLY_REASON,
  reduce_max: INFERENCE_ONLY_REASON,
  reshape_to: INFERENCE_ONLY_REASON,
};

/** Input slots that backward ops read for their run-time shape only (never their values). */
export function isShapeOnlyInput(op: OpName, slot: number): boolean {
  switch (op) {
    case 'reshape_like':
    case 'upsample_nearest_like':
    case 'upsample_nearest_grad':
    case 'slice_grad':
    case 'reduce_grad':
      return slot === 1;
    case 'conv2d_grad_input':
      return slot === 2;
    case 'concat_grad':
      return slot > 0;
    default:
      return false;
  }
}
