import type { GraphBuilder, T } from '../builder.js';
import type { OpName, Shape } from '../ir.js';
import { type GradRule, when } from './types.js';

/** Gradients of resampling, layout and reduction ops: each moves or sums dy back to where it came from. */

/**
 * A static reshape target that rebuilds `to` from a tensor shaped `from`, or undefined when `to` has more than
 * one symbolic dim that cannot be copied positionally (then a run-time shape reference is needed).
 */
function staticReshape(from: Shape, to: Shape): number[] | undefined {
  let inferred = false;
  const spec: number[] = [];
  for (let i = 0; i < to.length; i++) {
    const d = to[i]!;
    if (d === 0) return undefined; // 0 would mean "copy" in a reshape target
    if (typeof d === 'number') spec.push(d);
    else if (from[i] === d) spec.push(0);
    else if (!inferred) {
      inferred = true;
      spec.push(-1);
    } else return undefined;
  }
  return spec;
}

/** A fixed number large enough to mean "to the end" for slice bounds. */
const TO_END = Number.MAX_SAFE_INTEGER;

export const SHAPE_RULES = {
  upsample_nearest: (c, dy) => [when(c, 0, () => c.g.upsampleNearestGrad(dy, c.ref(0)))],
  // The reference input only provides the output size.
  upsample_nearest_like: (c, dy) => [when(c, 0, () => c.g.upsampleNearestGrad(dy, c.ref(0))), undefined],
  upsample_nearest_grad: (c, gz) => [when(c, 0, () => c.g.upsampleNearestLike(gz, c.ref(0))), undefined],
  concat: (c, dy) => {
    const axis = c.node.attrs.axis as number;
    const sizes = c.node.inputs.map((_, i) => c.shape(i)[axis]!);
    return c.node.inputs.map((_, i) =>
      when(c, i, () => {
        const before = sizes.slice(0, i);
        const start = before.every((d) => typeof d === 'number') ? (before as number[]).reduce((a, b) => a + b, 0) : undefined;
        const len = sizes[i]!;
        if (start !== undefined && typeof len === 'number') return c.g.slice(dy, axis, start, start + len);
        if (start !== undefined && i === sizes.length - 1) return c.g.slice(dy, axis, start, TO_END);
        // Offsets known only at run time: the earlier parts lend their sizes.
        return c.g.concatGrad(dy, c.node.inputs.slice(0, i + 1).map((_, j) => c.ref(j)), axis);
      }),
    );
  },
  slice: (c, dy) => {
    const a = c.node.attrs;
    return [when(c, 0, () => c.g.sliceGrad(dy, c.ref(0), a.axis as number, a.start as number, a.end as number))];
  },
  slice_grad: (c, gz) => {
    const a = c.node.attrs;
    return [when(c, 0, () => c.g.slice(gz, a.axis as number, a.start as number, a.end as number)), undefined];
  },
  reshape: (c, dy) => [when(c, 0, () => reshapeBack(c.g, dy, c.shape(0), () => c.ref(0)))],
  reshape_like: (c, dy) => [when(c, 0, () => reshapeBack(c.g, dy, c.shape(0), () => c.ref(0))), undefined],
  transpose: (c, dy) => {
    const perm = c.node.attrs.perm as number[];
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => (inv[p] = i));
    return [when(c, 0, () => c.g.transpose(dy, inv))];
  },
  reduce_sum: (c, dy) => [when(c, 0, () => reduceBack(c.g, dy, c.ref(0), c.node.attrs, false))],
  reduce_mean: (c, dy) => [when(c, 0, () => reduceBack(c.g, dy, c.ref(0), c.node.attrs, true))],
  // reduce_grad is a broadcast: its adjoint is the matching reduction.
  reduce_grad: (c, gz) => {
    const a = c.node.attrs;
    const rank = c.shape(1).length;
    const given = a.axes as number[];
    const axes = given.length ? given : Array.from({ length: rank }, (_, i) => i);
    const keep = Boolean(a.keepdims);
    return [when(c, 0, () => (a.mean ? c.g.reduceMean(gz, axes, keep) : c.g.reduceSum(gz, axes, keep))), undefined];
  },
  // Only float → float casts carry gradients: casts to integers cut the path (their output is not float).
  cast: (c, dy) => [when(c, 0, () => dy)],
  gather: (c) => {
    if (c.needs(0)) {
      throw new Error('autodiff: gather has no gradient with respect to its data (embedding tables are frozen); keep the table out of `wrt` paths');
    }
    return [undefined, undefined];
  },
  concat_grad: (c) => {
    if (c.needs(0)) throw new Error('autodiff: concat_grad (a backward op) has no second-order gradient');
    return c.node.inputs.map(() => undefined);
  },
} satisfies Partial<Record<OpName, GradRule>>;

function reshapeBack(g: GraphBuilder, dy: T, to: Shape, ref: () => T): T {
  const spec = staticReshape(dy.shape, to);
  return spec ? g.reshape(dy, spec) : g.reshapeLike(dy, ref());
}

function reduceBack(g: GraphBuilder, dy: T, x: T, attrs: Record<string, unknown>, mean: boolean): T {
  return g.reduceGrad(dy, x, attrs.axes as number[], Boolean(attrs.keepdims), mean);
}
