import type { OpName } from '../ir.js';
import { type GradRule, type RuleContext, swapLast, unbroadcast, when } from './types.js';

/** Gradients of matmul, linear and conv2d (and of the conv gradient ops themselves, for second order). */

type ConvAttrs = { stride: number; padding: number; dilation: number; groups: number };

function convAttrs(c: RuleContext): ConvAttrs {
  const a = c.node.attrs;
  return { stride: a.stride as number, padding: a.padding as number, dilation: a.dilation as number, groups: a.groups as number };
}

function kernelOf(c: RuleContext, i: number): number[] {
  const s = c.shape(i);
  return [s[2] as number, s[3] as number];
}

export const LINALG_RULES = {
  matmul: (c, dy) => [
    when(c, 0, () => unbroadcast(c.g, c.g.matmul(dy, swapLast(c.g, c.input(1))), c.shape(0))),
    when(c, 1, () => unbroadcast(c.g, c.g.matmul(swapLast(c.g, c.input(0)), dy), c.shape(1))),
  ],
  // y = x·Wᵀ + b: dx = dy·W, dW = Σ dyᵀ·x over all leading axes, db = Σ dy.
  linear: (c, dy) => {
    const { g } = c;
    const [outF, inF] = c.shape(1) as number[] as [number, number];
    const lead = Array.from({ length: dy.rank - 1 }, (_, i) => i);
    return [
      when(c, 0, () => g.matmul(dy, c.input(1))),
      when(c, 1, () => g.matmul(g.transpose(g.reshape(dy, [-1, outF]), [1, 0]), g.reshape(c.input(0), [-1, inF]))),
      when(c, 2, () => (lead.length ? g.reduceSum(dy, lead, false) : dy)),
    ];
  },
  conv2d: (c, dy) => {
    const o = convAttrs(c);
    return [
      when(c, 0, () => c.g.conv2dGradInput(dy, c.input(1), c.ref(0), o)),
      when(c, 1, () => c.g.conv2dGradWeight(c.input(0), dy, { ...o, kernel: kernelOf(c, 1) })),
      when(c, 2, () => c.g.reduceSum(dy, [0, 2, 3], false)),
    ];
  },
  // z = convᵀ(d, W) is linear in d and W: ⟨g, z⟩ = ⟨conv(g, W), d⟩, so dd = conv(g, W) and dW = gradW(g, d).
  conv2d_grad_input: (c, gz) => {
    const o = convAttrs(c);
    return [
      when(c, 0, () => c.g.conv2d(gz, c.input(1), undefined, o)),
      when(c, 1, () => c.g.conv2dGradWeight(gz, c.input(0), { ...o, kernel: kernelOf(c, 1) })),
      undefined,
    ];
  },
  // z = gradW(x, d): ⟨G, z⟩ = ⟨conv(x, G), d⟩, so dx = convᵀ(d, G) and dd = conv(x, G).
  conv2d_grad_weight: (c, gz) => {
    const o = convAttrs(c);
    return [when(c, 0, () => c.g.conv2dGradInput(c.input(1), gz, c.ref(0), o)), when(c, 1, () => c.g.conv2d(c.input(0), gz, undefined, o))];
  },
} satisfies Partial<Record<OpName, GradRule>>;
