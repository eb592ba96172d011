import type { GraphBuilder, T } from '../builder.js';
import type { Node, Shape } from '../ir.js';

/**
 * What a gradient rule sees of the node it differentiates. Forward values are handed out on demand because,
 * with recomputation on, asking for one may emit the nodes that rebuild it.
 */
export interface RuleContext {
  g: GraphBuilder;
  node: Node;
  /** Forward input `i` (a recomputed copy when recomputation is on). */
  input(i: number): T;
  /**
   * Input `i` for use as a shape reference only (the `ref` operand of reshape_like, slice_grad...). It is
   * always the original forward value, never a recomputed copy: a shape must not cost a recomputation, and
   * ORT's depth-first schedule runs a reference's Shape() ahead of the gradient chain it feeds, so reading
   * the original does not keep it alive into the backward pass.
   */
  ref(i: number): T;
  /** The IR shape of input `i`; unlike input(i) it never makes a recomputation node. */
  shape(i: number): Shape;
  /** The forward output. */
  output(): T;
  /** Whether input `i` lies on a path from a `wrt` tensor, i.e. whether its gradient is wanted. */
  needs(i: number): boolean;
}

/** Returns the gradient for each input (undefined where not needed or not defined), shaped like that input. */
export type GradRule = (c: RuleContext, dy: T) => Array<T | undefined>;

/** Sums `grad` (shaped like a broadcast result) down to `target`, undoing numpy broadcasting. */
export function unbroadcast(g: GraphBuilder, grad: T, target: Shape): T {
  const lead = grad.rank - target.length;
  let r = grad;
  if (lead > 0) r = g.reduceSum(r, Array.from({ length: lead }, (_, i) => i), false);
  // Only a literal 1 broadcasts: symbolic dims are taken to be equal to the other side, as the builder does.
  const axes = target.flatMap((d, i) => (d === 1 && r.shape[i] !== 1 ? [i] : []));
  return axes.length ? g.reduceSum(r, axes, true) : r;
}

/** Transposes the last two axes. */
export function swapLast(g: GraphBuilder, x: T): T {
  const perm = Array.from({ length: x.rank }, (_, i) => i);
  perm[x.rank - 2] = x.rank - 1;
  perm[x.rank - 1] = x.rank - 2;
  return g.transpose(x, perm);
}

/** Only rules for these inputs are computed: returns `f()` when input i needs a gradient. */
export function when(c: RuleContext, i: number, f: () => T): T | undefined {
  return c.needs(i) ? f() : undefined;
}

/** A subexpression built once, on first use, so a rule emits nothing for the gradients it is not asked for. */
export function lazy<V>(f: () => V): () => V {
  let v: V | undefined;
  let done = false;
  return () => {
    if (!done) {
      v = f();
      done = true;
    }
    return v as V;
  };
}
