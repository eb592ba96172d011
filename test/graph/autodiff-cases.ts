/**
 * Gradient-check cases, op by op. Every case is compiled once with symbolic dims and checked at two or more
 * sizes; odd sizes are included wherever a stride or a resize makes them special.
 */
import type { GraphBuilder } from '../../runtime/graph/index.js';
import type { GradCase } from './autodiff-check.js';
import { randWeight, uniform, type Gen } from './harness.js';

const positive: Gen = (n, seed) => uniform(n, seed, 0.3, 2.5);
const IMG = [{ B: 1, H: 3, W: 4 }, { B: 2, H: 2, W: 3 }];
const SEQ = [{ B: 1, S: 3 }, { B: 2, S: 2 }];

function attentionCase(fused: boolean, causal: boolean): GradCase {
  return {
    name: `attention fused=${fused} causal=${causal}`,
    compile: { fusedAttention: fused },
    sizes: causal ? [{ B: 1, S: 3 }, { B: 2, S: 4 }] : [{ B: 1, S: 3, L: 2 }, { B: 2, S: 2, L: 4 }],
    wrt: causal ? ['q', 'v'] : ['q', 'k', 'v'],
    build(g) {
      const q = g.input('q', 'float32', ['B', 'S', 4]);
      const k = causal ? q : g.input('k', 'float32', ['B', 'L', 4]);
      const v = g.input('v', 'float32', causal ? ['B', 'S', 6] : ['B', 'L', 6]);
      return [g.attention(q, k, v, 2, { causal }), g.attention(q, k, v, 1, { causal })];
    },
  };
}

export const GRAD_CASES: GradCase[] = [
  {
    name: 'add / sub / mul with broadcasting',
    sizes: IMG,
    wrt: ['x', 'y', 'bin_c'],
    build(g) {
      const x = g.input('x', 'float32', ['B', 3, 'H', 'W']);
      const y = g.input('y', 'float32', ['B', 1, 'H', 'W']);
      const c = randWeight(g, 'bin_c', [3, 1, 1], 11);
      return [g.add(x, c), g.add(x, 0.5), g.sub(y, x), g.mul(x, y), g.mul(c, y), g.sub(g.mul(x, x), c)];
    },
  },
  {
    name: 'div / pow / max',
    sizes: IMG,
    gens: { p: positive, y: positive },
    wrt: ['x', 'y', 'p'],
    build(g) {
      const x = g.input('x', 'float32', ['B', 3, 'H', 'W']);
      const y = g.input('y', 'float32', ['B', 1, 'H', 'W']);
      const p = g.input('p', 'float32', [3, 1, 1]);
      return [g.div(x, p), g.div(p, y), g.pow(p, g.mul(x, 0.5)), g.pow(y, 1.5), g.pow(y, x), g.max(x, y), g.max(x, 0.25)];
    },
  },
  {
    name: 'unary ops',
    sizes: SEQ,
    gens: { p: positive },
    wrt: ['x', 'p'],
    build(g: GraphBuilder) {
      const x = g.input('x', 'float32', ['B', 'S', 5]);
      const p = g.input('p', 'float32', ['B', 'S', 5]);
      const x2 = g.mul(x, 1.5);
      return [
        g.neg(x), g.exp(x), g.log(p), g.sqrt(p), g.sin(x2), g.cos(x2), g.tanh(x2), g.relu(x), g.sigmoid(x2), g.silu(x2),
        g.gelu(x2), g.gelu(x2, 'tanh'), g.quickGelu(x2), g.erf(x),
      ];
    },
  },
  {
    name: 'float casts pass gradients, integer casts and comparisons stop them',
    sizes: SEQ,
    wrt: ['x'],
    build(g) {
      const x = g.input('x', 'float32', ['B', 'S', 4]);
      const viaInt = g.cast(g.cast(g.mul(x, 4), 'int32'), 'float32');
      const mask = g.cast(g.greater(x, 0), 'float32');
      return [g.cast(x, 'float32'), g.mul(viaInt, x), g.mul(mask, x)];
    },
  },
  {
    name: 'matmul with batch broadcasting',
    sizes: [{ B: 1, S: 3, N: 2 }, { B: 2, S: 2, N: 3 }],
    wrt: ['a', 'b', 'mm_w'],
    build(g) {
      const a = g.input('a', 'float32', ['B', 2, 'S', 4]);
      const b = g.input('b', 'float32', [2, 4, 'N']);
      const w = randWeight(g, 'mm_w', [4, 5], 12);
      return [g.matmul(a, b), g.matmul(a, w)];
    },
  },
  {
    name: 'linear (weight, bias, fed weight)',
    sizes: SEQ,
    wrt: ['x', 'w', 'lin_w', 'lin_b'],
    build(g) {
      const x = g.input('x', 'float32', ['B', 'S', 4]);
      const fed = g.input('w', 'float32', [3, 4]);
      return [g.linear(x, randWeight(g, 'lin_w', [5, 4], 13), randWeight(g, 'lin_b', [5], 14)), g.linear(x, fed), g.linear(g.reshape(x, [-1, 4]), fed)];
    },
  },
  {
    name: 'conv2d 3x3 pad 1 and valid, stride 2 at odd and even sizes, dilation 2',
    sizes: [{ B: 1, H: 5, W: 4 }, { B: 2, H: 4, W: 5 }, { B: 1, H: 6, W: 7 }],
    wrt: ['x', 'conv_w3', 'conv_b3'],
    build(g) {
      const x = g.input('x', 'float32', ['B', 3, 'H', 'W']);
      const w3 = randWeight(g, 'conv_w3', [2, 3, 3, 3], 16);
      const b3 = randWeight(g, 'conv_b3', [2], 17);
      return [
        g.conv2d(x, w3, b3, { padding: 1 }),
        g.conv2d(x, w3, b3),
        g.conv2d(x, w3, undefined, { stride: 2, padding: 1 }),
        g.conv2d(x, w3, b3, { stride: 2 }),
        g.conv2d(x, w3, b3, { padding: 2, dilation: 2 }),
      ];
    },
  },
  {
    name: 'conv2d groups, depthwise stride 2, 1x1',
    sizes: [{ B: 1, H: 5, W: 4 }, { B: 2, H: 4, W: 3 }],
    wrt: ['x', 'conv_wg', 'conv_dw', 'conv_w1'],
    build(g) {
      const x = g.input('x', 'float32', ['B', 4, 'H', 'W']);
      return [
        g.conv2d(x, randWeight(g, 'conv_wg', [6, 2, 3, 3], 18), undefined, { padding: 1, groups: 2 }),
        g.conv2d(x, randWeight(g, 'conv_dw', [4, 1, 3, 3], 19), undefined, { padding: 1, groups: 4, stride: 2 }),
        g.conv2d(x, randWeight(g, 'conv_w1', [3, 4, 1, 1], 20), undefined),
      ];
    },
  },
  {
    // ResAdapter's trainable form: a frozen stride-2 conv plus a low-rank update W + reshape(up · down).
    name: 'conv LoRA on a stride-2 conv (gradients w.r.t. up and down)',
    sizes: [{ B: 1, H: 5, W: 6 }, { B: 2, H: 4, W: 3 }],
    wrt: ['up', 'down'],
    build(g) {
      const x = g.input('x', 'float32', ['B', 3, 'H', 'W']);
      const up = g.input('up', 'float32', [4, 2]);
      const down = g.input('down', 'float32', [2, 27]);
      const w = g.add(randWeight(g, 'lora_base', [4, 3, 3, 3], 42), g.reshape(g.matmul(up, down), [4, 3, 3, 3]));
      return [g.conv2d(x, w, randWeight(g, 'lora_b', [4], 43), { stride: 2, padding: 1 })];
    },
  },
  {
    name: 'group_norm rank 4 and rank 3',
    sizes: [{ B: 1, H: 2, W: 3, S: 4 }, { B: 2, H: 3, W: 2, S: 3 }],
    wrt: ['x', 's', 'gn_w', 'gn_b', 'fw3', 'fb3'],
    build(g) {
      const x = g.add(g.mul(g.input('x', 'float32', ['B', 4, 'H', 'W']), 3), 1);
      const s = g.input('s', 'float32', ['B', 6, 'S']);
      return [
        g.groupNorm(x, 2, randWeight(g, 'gn_w', [4], 21), randWeight(g, 'gn_b', [4], 22)),
        g.groupNorm(s, 3, g.input('fw3', 'float32', [6]), g.input('fb3', 'float32', [6]), 1e-3),
      ];
    },
  },
  {
    name: 'layer_norm',
    sizes: SEQ,
    wrt: ['x', 'ln_w', 'ln_b'],
    build(g) {
      const x = g.add(g.mul(g.input('x', 'float32', ['B', 'S', 5]), 2), 1);
      return [g.layerNorm(x, randWeight(g, 'ln_w', [5], 27), randWeight(g, 'ln_b', [5], 28))];
    },
  },
  {
    name: 'softmax over each axis',
    sizes: SEQ,
    wrt: ['x'],
    build(g) {
      const x = g.mul(g.input('x', 'float32', ['B', 'S', 4]), 2);
      return [g.softmax(x), g.softmax(x, 1), g.softmax(x, 0)];
    },
  },
  attentionCase(true, false),
  attentionCase(false, false),
  attentionCase(true, true),
  attentionCase(false, true),
  {
    name: 'upsample_nearest x2 and x3',
    sizes: [{ B: 1, H: 2, W: 3 }, { B: 2, H: 3, W: 1 }],
    wrt: ['x'],
    build(g) {
      const x = g.input('x', 'float32', ['B', 2, 'H', 'W']);
      return [g.upsampleNearest(x), g.upsampleNearest(x, 3)];
    },
  },
  {
    name: 'upsample_nearest_like at odd UNet skip sizes',
    sizes: [
      { B: 1, h: 2, w: 3, H: 4, W: 5 },
      { B: 1, h: 4, w: 5, H: 7, W: 9 },
      { B: 2, h: 1, w: 2, H: 2, W: 3 },
      { B: 1, h: 3, w: 5, H: 6, W: 10 },
    ],
    wrt: ['x'],
    build(g) {
      return [g.upsampleNearestLike(g.input('x', 'float32', ['B', 2, 'h', 'w']), g.input('ref', 'float32', ['B', 1, 'H', 'W']))];
    },
  },
  {
    name: 'concat along fixed and symbolic axes',
    sizes: IMG,
    wrt: ['x', 'y'],
    build(g) {
      const x = g.input('x', 'float32', ['B', 2, 'H', 'W']);
      const y = g.input('y', 'float32', ['B', 3, 'H', 'W']);
      return [g.concat([x, y, x], 1), g.concat([x, g.mul(x, x)], -1), g.concat([x, x], 0), g.concat([y, x, y], 1)];
    },
  },
  {
    name: 'slice (negative and oversized bounds)',
    sizes: [{ B: 1, S: 5 }, { B: 2, S: 4 }],
    wrt: ['x'],
    build(g) {
      const x = g.input('x', 'float32', ['B', 'S', 6]);
      return [g.slice(x, 1, 0, 2), g.slice(x, 1, 1, 2 ** 31), g.slice(x, 1, -3, -1), g.slice(x, -1, -4, Number.MAX_SAFE_INTEGER), g.chunk(x, 3, -1)[1]!];
    },
  },
  {
    name: 'reshape (0 and -1), reshape_like, transpose',
    sizes: IMG,
    wrt: ['x'],
    build(g) {
      const x = g.input('x', 'float32', ['B', 4, 'H', 'W']);
      const seq = g.reshape(g.transpose(x, [0, 2, 3, 1]), [0, -1, 4]);
      return [
        g.transpose(g.reshape(seq, [0, 0, 2, 2]), [0, 2, 1, 3]),
        g.reshape(x, [-1]),
        g.transpose(x, [3, 1, 0, 2]),
        g.reshapeLike(g.transpose(seq, [0, 2, 1]), x),
        g.reshape(g.reshape(x, [0, 4, -1]), [0, 2, 2, -1]),
      ];
    },
  },
  {
    name: 'reduce_mean / reduce_sum',
    sizes: IMG,
    wrt: ['x'],
    build(g) {
      const x = g.input('x', 'float32', ['B', 4, 'H', 'W']);
      return [
        g.reduceMean(x, [1]),
        g.reduceMean(x, [2, 3], false),
        g.reduceMean(x, [1], false),
        g.reduceSum(x, [1], false),
        g.reduceSum(x, [0, 1, 2, 3]),
        g.reduceSum(x, [-2, -1]),
      ];
    },
  },
  {
    name: 'gather output mixed with a differentiable branch',
    sizes: SEQ,
    wrt: ['x'],
    build(g) {
      const ids = g.constant(new BigInt64Array([3n, 0n, 2n]), [3], 'int64');
      const table = randWeight(g, 'emb', [5, 4], 29);
      return [g.mul(g.input('x', 'float32', ['B', 3, 4]), g.gather(table, ids))];
    },
  },
  // The gradient helpers are IR ops too: their own rules give second-order gradients.
  {
    name: 'conv2d_grad_input / conv2d_grad_weight (second order)',
    // h, w are the stride-2 conv output sizes of H, W.
    sizes: [{ B: 1, H: 5, W: 4, h: 3, w: 2 }, { B: 2, H: 4, W: 3, h: 2, w: 2 }],
    wrt: ['dy', 'x', 'cg_w'],
    build(g) {
      const x = g.input('x', 'float32', ['B', 4, 'H', 'W']);
      const w = randWeight(g, 'cg_w', [6, 2, 3, 3], 41);
      const dy = g.input('dy', 'float32', ['B', 6, 'h', 'w']);
      const o = { stride: 2, padding: 1, dilation: 1, groups: 2 };
      return [g.conv2dGradInput(dy, w, x, o), g.conv2dGradWeight(x, dy, { ...o, kernel: [3, 3] })];
    },
  },
  {
    name: 'attention_probs, upsample_nearest_grad, slice_grad, reduce_grad (second order)',
    sizes: [{ B: 1, S: 3, H: 3, W: 5 }, { B: 2, S: 2, H: 4, W: 3 }],
    wrt: ['q', 'k', 'u', 'd'],
    build(g) {
      const q = g.input('q', 'float32', ['B', 'S', 4]);
      const k = g.input('k', 'float32', ['B', 'S', 4]);
      const u = g.input('u', 'float32', ['B', 2, 'H', 'W']);
      const small = g.input('small', 'float32', ['B', 2, 2, 2]);
      const d = g.input('d', 'float32', ['B', 'S', 2]);
      const full = g.input('full', 'float32', ['B', 'S', 6]);
      return [
        g.attentionProbs(q, k, 2, false),
        g.attentionProbs(q, k, 1, true),
        g.upsampleNearestGrad(u, small),
        g.sliceGrad(d, full, 2, -3, -1),
        g.reduceGrad(g.reduceSum(d, [2], false), full, [2], false, true),
        g.reduceGrad(g.reduceSum(d, [1, 2]), full, [1, 2], true, false),
      ];
    },
  },
];
