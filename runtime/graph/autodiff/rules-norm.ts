import type { GraphBuilder, T } from '../builder.js';
import type { OpName } from '../ir.js';
import { type GradRule, type RuleContext, lazy, swapLast, when } from './types.js';

/** Gradients of group_norm, layer_norm, softmax and attention. */

const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);

/**
 * Normalisation statistics rebuilt from x inside the backward graph: the forward lowers to one fused ORT op
 * that does not expose its mean and variance, and recomputing them costs two reductions.
 */
function normalize(g: GraphBuilder, x: T, axis: number, eps: number): { xhat: T; rstd: T } {
  const mean = g.reduceMean(x, [axis]);
  const xc = g.sub(x, mean);
  const rstd = g.pow(g.add(g.reduceMean(g.mul(xc, xc), [axis]), eps), -0.5);
  return { xhat: g.mul(xc, rstd), rstd };
}

/**
 * For y = xhat·w + b with xhat normalised over `axis`: dx = rstd·(gy − mean(gy) − xhat·mean(gy·xhat)) where
 * gy = dy·w. The two means remove the components along the directions that normalisation projects out.
 */
function normInputGrad(g: GraphBuilder, gy: T, xhat: T, rstd: T, axis: number): T {
  const m1 = g.reduceMean(gy, [axis]);
  const m2 = g.reduceMean(g.mul(gy, xhat), [axis]);
  return g.mul(g.sub(g.sub(gy, m1), g.mul(xhat, m2)), rstd);
}

/** [B, S, C] → [B, heads, S, C/heads] */
function splitHeads(g: GraphBuilder, x: T, heads: number, width: number): T {
  return g.transpose(g.reshape(x, [0, 0, heads, width]), [0, 2, 1, 3]);
}

function mergeHeads(g: GraphBuilder, x: T, channels: number): T {
  return g.reshape(g.transpose(x, [0, 2, 1, 3]), [0, 0, channels]);
}

/** Score gradient of P = softmax(scale·q·kᵀ), given dP: scale·P·(dP − Σ_j dP·P). Masked entries have P = 0. */
function scoreGrad(g: GraphBuilder, p: T, dp: T, scale: number): T {
  return g.mul(g.mul(p, g.sub(dp, g.reduceSum(g.mul(dp, p), [3]))), scale);
}

/** dq and dk of the scores, in [B, S, C] layout. */
function qkGrads(c: RuleContext, dS: () => T, heads: number): Array<T | undefined> {
  const { g } = c;
  const ch = c.shape(0)[2] as number;
  const dh = ch / heads;
  return [
    when(c, 0, () => mergeHeads(g, g.matmul(dS(), splitHeads(g, c.input(1), heads, dh)), ch)),
    when(c, 1, () => mergeHeads(g, g.matmul(swapLast(g, dS()), splitHeads(g, c.input(0), heads, dh)), ch)),
  ];
}

export const NORM_RULES = {
  group_norm: (c, dy) => {
    const { g } = c;
    const groups = c.node.attrs.groups as number;
    const rank = c.shape(0).length;
    const channels = c.shape(0)[1] as number;
    const notChannel = [0, ...range(2, rank)];
    // Statistics per (sample, group) over [C/groups, spatial...] flattened into one axis.
    const stats = lazy(() => normalize(g, g.reshape(c.input(0), [0, groups, -1]), 2, c.node.attrs.eps as number));
    const xhat = lazy(() => g.reshapeLike(stats().xhat, c.ref(0)));
    return [
      when(c, 0, () => {
        const gy = g.mul(dy, g.reshape(c.input(1), [channels, ...new Array<number>(rank - 2).fill(1)]));
        const { xhat: xg, rstd } = stats();
        return g.reshapeLike(normInputGrad(g, g.reshape(gy, [0, groups, -1]), xg, rstd, 2), c.ref(0));
      }),
      when(c, 1, () => g.reduceSum(g.mul(dy, xhat()), notChannel, false)),
      when(c, 2, () => g.reduceSum(dy, notChannel, false)),
    ];
  },
  layer_norm: (c, dy) => {
    const { g } = c;
    const rank = c.shape(0).length;
    const lead = range(0, rank - 1);
    const stats = lazy(() => normalize(g, c.input(0), rank - 1, c.node.attrs.eps as number));
    const sumLead = (t: T) => (lead.length ? g.reduceSum(t, lead, false) : t);
    return [
      when(c, 0, () => normInputGrad(g, g.mul(dy, c.input(1)), stats().xhat, stats().rstd, rank - 1)),
      when(c, 1, () => sumLead(g.mul(dy, stats().xhat))),
      when(c, 2, () => sumLead(dy)),
    ];
  },
  softmax: (c, dy) => {
    const { g } = c;
    return [
      when(c, 0, () => {
        const y = c.output();
        return g.mul(y, g.sub(dy, g.reduceSum(g.mul(dy, y), [c.node.attrs.axis as number])));
      }),
    ];
  },
  // Decomposed head by head: P is rebuilt by attention_probs (the forward may be a fused kernel that never
  // materialises it), and only one head's [B, S, L] score tensors are alive at a time, which bounds the
  // backward's peak memory at high resolution where S·L dominates everything else.
  attention: (c, dy) => {
    const { g } = c;
    const heads = c.node.attrs.heads as number;
    const dh = (c.shape(0)[2] as number) / heads;
    const dv = (c.shape(2)[2] as number) / heads;
    const scale = dh ** -0.5;
    // ORT would otherwise interleave the heads (its depth-first schedule follows dq, dk and dv separately)
    // and keep every head's scores alive: each head reads its inputs through `+ 0·(previous head's grads)`.
    let gate: T | undefined;
    // [B, S, C] → head j as [B, 1, S, width]
    const head = (x: T, j: number, width: number) => {
      const part = heads === 1 ? x : g.slice(x, 2, j * width, (j + 1) * width);
      return g.reshape(gate ? g.add(part, gate) : part, [0, 1, -1, width]);
    };
    const flat = (x: T, width: number) => g.reshape(x, [0, -1, width]);
    const parts: Array<Array<T | undefined>> = [];
    for (let j = 0; j < heads; j++) {
      const q = lazy(() => head(c.input(0), j, dh));
      const k = lazy(() => head(c.input(1), j, dh));
      const p = lazy(() => g.attentionProbs(flat(q(), dh), flat(k(), dh), 1, Boolean(c.node.attrs.causal)));
      const dO = head(dy, j, dv);
      const dS = lazy(() => scoreGrad(g, p(), g.matmul(dO, swapLast(g, head(c.input(2), j, dv))), 1));
      // Transposing the small operands instead of the [S, L] ones: (Pᵀ·dO)ᵀ = dOᵀ·P and (dSᵀ·q)ᵀ = qᵀ·dS.
      const grads = [
        when(c, 0, () => g.mul(flat(g.matmul(dS(), k()), dh), scale)),
        when(c, 1, () => g.mul(flat(swapLast(g, g.matmul(swapLast(g, q()), dS())), dh), scale)),
        when(c, 2, () => flat(swapLast(g, g.matmul(swapLast(g, dO), p())), dv)),
      ];
      parts.push(grads);
      if (j + 1 < heads) gate = g.mul(grads.filter((t) => t !== undefined).map((t) => g.slice(g.reshape(t, [-1]), 0, 0, 1)).reduce((a, b) => g.add(a, b)), 0);
    }
    return [0, 1, 2].map((i) => (parts[0]![i] ? (heads === 1 ? parts[0]![i] : g.concat(parts.map((x) => x[i]!), 2)) : undefined));
  },
  attention_probs: (c, gp) => {
    const heads = c.node.attrs.heads as number;
    const scale = ((c.shape(0)[2] as number) / heads) ** -0.5;
    return qkGrads(c, lazy(() => scoreGrad(c.g, c.output(), gp, scale)), heads);
  },
} satisfies Partial<Record<OpName, GradRule>>;
