/**
 * ONNX-vs-reference cases for the ops autodiff adds (erf, greater, the *_grad helpers). Their `dy` inputs
 * are produced inside the graph by the matching forward op on an independent input, so every shape
 * (including stride-2 convs on odd sizes, where the transposed conv needs `ref` to pick the size) follows
 * from the fed sizes.
 */
import type { GraphBuilder } from '../../runtime/graph/index.js';
import type { CompileOptions } from '../../runtime/graph/index.js';
import { randWeight, type Gen, type Sizes } from './harness.js';

export interface OpCase {
  name: string;
  build(g: GraphBuilder): void;
  sizes: Sizes[];
  gens?: Record<string, Gen>;
  compile?: CompileOptions;
}

const IMG = [{ B: 1, H: 5, W: 7 }, { B: 2, H: 8, W: 6 }, { B: 1, H: 6, W: 9 }];

export const AUTODIFF_CASES: OpCase[] = [
  {
    name: 'erf and greater',
    sizes: [{ B: 1, S: 5 }, { B: 2, S: 3 }],
    build(g) {
      const x = g.mul(g.input('x', 'float32', ['B', 'S', 6]), 2);
      const y = g.input('y', 'float32', ['B', 1, 6]);
      g.output('erf', g.erf(x));
      g.output('gt', g.greater(x, y));
      g.output('gt_scalar', g.greater(x, 0.5));
    },
  },
  {
    name: 'conv2d_grad_input / conv2d_grad_weight',
    sizes: IMG,
    build(g) {
      const x = g.input('x', 'float32', ['B', 4, 'H', 'W']);
      const u = g.input('u', 'float32', ['B', 4, 'H', 'W']);
      const variants = [
        { name: 'k3p1', w: [6, 4, 3, 3], o: { stride: 1, padding: 1, dilation: 1, groups: 1 } },
        { name: 's2p1', w: [6, 4, 3, 3], o: { stride: 2, padding: 1, dilation: 1, groups: 1 } },
        { name: 'dil2', w: [6, 4, 3, 3], o: { stride: 1, padding: 2, dilation: 2, groups: 1 } },
        { name: 'grp2', w: [6, 2, 3, 3], o: { stride: 2, padding: 0, dilation: 1, groups: 2 } },
        { name: 'k1', w: [3, 4, 1, 1], o: { stride: 1, padding: 0, dilation: 1, groups: 1 } },
      ];
      variants.forEach((v, i) => {
        const w = randWeight(g, `cgrad_${v.name}`, v.w, 60 + i);
        const dy = g.conv2d(u, w, undefined, v.o);
        g.output(`dx_${v.name}`, g.conv2dGradInput(dy, w, x, v.o));
        g.output(`dw_${v.name}`, g.conv2dGradWeight(x, dy, { ...v.o, kernel: v.w.slice(2) }));
      });
    },
  },
  {
    name: 'attention_probs',
    sizes: [{ B: 1, S: 4, L: 3 }, { B: 2, S: 6, L: 6 }],
    build(g) {
      const q = g.input('q', 'float32', ['B', 'S', 8]);
      const k = g.input('k', 'float32', ['B', 'L', 8]);
      g.output('cross', g.attentionProbs(q, k, 2, false));
      g.output('self_causal', g.attentionProbs(q, q, 4, true));
      g.output('self_1head', g.attentionProbs(q, q, 1, false));
    },
  },
  {
    name: 'upsample_nearest_grad at odd skip sizes',
    sizes: [
      { B: 1, h: 3, w: 5, H: 6, W: 10 },
      { B: 2, h: 4, w: 5, H: 7, W: 9 },
      { B: 1, h: 2, w: 3, H: 4, W: 6 },
      { B: 1, h: 6, w: 4, H: 10, W: 6 },
    ],
    build(g) {
      const x = g.input('x', 'float32', ['B', 3, 'h', 'w']);
      const dy = g.input('dy', 'float32', ['B', 3, 'H', 'W']);
      g.output('dx', g.upsampleNearestGrad(dy, x));
    },
  },
  {
    name: 'concat_grad with run-time offsets',
    sizes: [{ B: 1, H: 3, W: 4, V: 2 }, { B: 2, H: 2, W: 5, V: 6 }],
    build(g) {
      const a = g.input('a', 'float32', ['B', 2, 'H', 'W']);
      const b = g.input('b', 'float32', ['B', 2, 'H', 'V']);
      const c = g.input('c', 'float32', ['B', 3, 'H', 'W']);
      const dyW = g.mul(g.concat([a, b, a], 3), 1.5);
      g.output('w_first', g.concatGrad(dyW, [a], 3));
      g.output('w_mid', g.concatGrad(dyW, [a, b], 3));
      g.output('w_last', g.concatGrad(dyW, [a, b, a], 3));
      const dyC = g.neg(g.concat([a, c], 1));
      g.output('c_last', g.concatGrad(dyC, [a, c], 1));
    },
  },
  {
    name: 'slice_grad',
    sizes: [{ B: 1, S: 5 }, { B: 2, S: 9 }],
    build(g) {
      const x = g.input('x', 'float32', ['B', 'S', 6]);
      const u = g.input('u', 'float32', ['B', 'S', 6]);
      for (const [name, axis, start, end] of [['head', 1, 0, 2], ['tail', 1, 1, 2 ** 31], ['neg', 1, -3, -1], ['chan', 2, 2, 5]] as const) {
        g.output(name, g.sliceGrad(g.slice(u, axis, start, end), x, axis, start, end));
      }
    },
  },
  {
    name: 'reduce_grad',
    sizes: IMG,
    build(g) {
      const x = g.input('x', 'float32', ['B', 4, 'H', 'W']);
      const u = g.input('u', 'float32', ['B', 4, 'H', 'W']);
      g.output('sum_keep', g.reduceGrad(g.reduceSum(u, [1]), x, [1], true, false));
      g.output('mean_drop', g.reduceGrad(g.reduceMean(u, [2, 3], false), x, [2, 3], false, true));
      g.output('mean_all', g.reduceGrad(g.reduceMean(u, [0, 1, 2, 3]), x, [0, 1, 2, 3], true, true));
      g.output('sum_last_drop', g.reduceGrad(g.reduceSum(u, [3], false), x, [3], false, false));
    },
  },
];
