import type { GraphBuilder, T } from '../builder.js';
import type { OpName } from '../ir.js';
import { type GradRule, type RuleContext, lazy, unbroadcast, when } from './types.js';

/** Gradients of the broadcasting binary ops and the pointwise unary ops. */

/** Applies per-operand local gradients and sums each back to its operand's shape. */
function binaryRule(local: (c: RuleContext, dy: T) => [() => T, () => T]): GradRule {
  return (c, dy) => {
    const [fa, fb] = local(c, dy);
    const { g } = c;
    return [
      when(c, 0, () => unbroadcast(g, fa(), c.shape(0))),
      when(c, 1, () => unbroadcast(g, fb(), c.shape(1))),
    ];
  };
}

const asFloat = (g: GraphBuilder, mask: T) => g.cast(mask, 'float32');

/** The derivative of a unary op times dy. */
function unaryRule(f: (g: GraphBuilder, dy: T, x: () => T, y: () => T) => T): GradRule {
  return (c, dy) => [when(c, 0, () => f(c.g, dy, () => c.input(0), () => c.output()))];
}

const SQRT_2PI = Math.sqrt(2 * Math.PI);

export const ELEMENTWISE_RULES = {
  add: binaryRule((_c, dy) => [() => dy, () => dy]),
  sub: binaryRule((c, dy) => [() => dy, () => c.g.neg(dy)]),
  mul: binaryRule((c, dy) => [() => c.g.mul(dy, c.input(1)), () => c.g.mul(dy, c.input(0))]),
  // d(a/b)/db = -a/b² = -y/b, which reuses the output instead of squaring b.
  div: binaryRule((c, dy) => [() => c.g.div(dy, c.input(1)), () => c.g.neg(c.g.div(c.g.mul(dy, c.output()), c.input(1)))]),
  pow: binaryRule((c, dy) => {
    const g = c.g;
    return [() => g.mul(dy, g.mul(c.input(1), g.pow(c.input(0), g.sub(c.input(1), 1)))), () => g.mul(dy, g.mul(c.output(), g.log(c.input(0))))];
  }),
  // Ties split the gradient evenly, as PyTorch's maximum does; 0.5·(1 + [a>b] − [b>a]) is 1, ½ or 0.
  max: binaryRule((c, dy) => {
    const g = c.g;
    const wa = lazy(() => g.mul(g.add(g.sub(asFloat(g, g.greater(c.input(0), c.input(1))), asFloat(g, g.greater(c.input(1), c.input(0)))), 1), 0.5));
    return [() => g.mul(dy, wa()), () => g.mul(dy, g.sub(1, wa()))];
  }),
  neg: unaryRule((g, dy) => g.neg(dy)),
  exp: unaryRule((g, dy, _x, y) => g.mul(dy, y())),
  log: unaryRule((g, dy, x) => g.div(dy, x())),
  sqrt: unaryRule((g, dy, _x, y) => g.div(g.mul(dy, 0.5), y())),
  sin: unaryRule((g, dy, x) => g.mul(dy, g.cos(x()))),
  cos: unaryRule((g, dy, x) => g.neg(g.mul(dy, g.sin(x())))),
  tanh: unaryRule((g, dy, _x, y) => g.mul(dy, g.sub(1, g.mul(y(), y())))),
  relu: unaryRule((g, dy, x) => g.mul(dy, asFloat(g, g.greater(x(), 0)))),
  sigmoid: unaryRule((g, dy, _x, y) => g.mul(dy, g.mul(y(), g.sub(1, y())))),
  // silu' = s·(1 + x·(1 − s)) with s = σ(x)
  silu: unaryRule((g, dy, x) => {
    const s = g.sigmoid(x());
    return g.mul(dy, g.mul(s, g.add(g.mul(x(), g.sub(1, s)), 1)));
  }),
  quick_gelu: unaryRule((g, dy, x) => {
    const s = g.sigmoid(g.mul(x(), 1.702));
    return g.mul(dy, g.add(s, g.mul(g.mul(x(), 1.702), g.mul(s, g.sub(1, s)))));
  }),
  gelu: (c, dy) => [when(c, 0, () => (c.node.attrs.approximate === 'tanh' ? geluTanhGrad(c.g, dy, c.input(0)) : geluErfGrad(c.g, dy, c.input(0))))],
  erf: unaryRule((g, dy, x) => g.mul(dy, g.mul(g.exp(g.neg(g.mul(x(), x()))), 2 / Math.sqrt(Math.PI)))),
  // A comparison's output is boolean: nothing flows back through it.
  greater: () => [undefined, undefined],
} satisfies Partial<Record<OpName, GradRule>>;

/** gelu(x) = x·Φ(x), so gelu' = Φ(x) + x·φ(x). */
function geluErfGrad(g: GraphBuilder, dy: T, x: T): T {
  const cdf = g.mul(g.add(g.erf(g.mul(x, Math.SQRT1_2)), 1), 0.5);
  const pdf = g.mul(g.exp(g.mul(g.mul(x, x), -0.5)), 1 / SQRT_2PI);
  return g.mul(dy, g.add(cdf, g.mul(x, pdf)));
}

/** gelu_tanh(x) = ½x(1 + tanh u), u = k(x + 0.044715x³): derivative ½(1 + t) + ½x(1 − t²)·k(1 + 3·0.044715x²). */
function geluTanhGrad(g: GraphBuilder, dy: T, x: T): T {
  const k = Math.sqrt(2 / Math.PI);
  const c = 0.044715;
  const x2 = g.mul(x, x);
  const t = g.tanh(g.mul(g.mul(x, g.add(g.mul(x2, c), 1)), k));
  const du = g.mul(g.add(g.mul(x2, 3 * c), 1), k);
  const d = g.add(g.mul(g.add(t, 1), 0.5), g.mul(g.mul(g.mul(x, 0.5), g.sub(1, g.mul(t, t))), du));
  return g.mul(dy, d);
}
