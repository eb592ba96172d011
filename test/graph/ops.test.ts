/**
 * Every IR op, compiled to ONNX and run by onnxruntime, against the float64 reference interpreter. Each case
 * is compiled once with symbolic dims and run at two or more sizes, so shape-dependent lowering (Reshape with
 * 0/-1, Shape-driven resizes, causal masks) is exercised at more than the size it was built for.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder, OPS, type OpName } from '../../runtime/graph/index.js';
import { checkAgainstReference, randWeight, uniform, type Gen } from './harness.js';
import { AUTODIFF_CASES, type OpCase } from './op-cases-autodiff.js';


const positive: Gen = (n, seed) => uniform(n, seed, 0.25, 3);
const ints = (lo: number, hi: number, big: boolean): Gen => (n, seed) => {
  const u = uniform(n, seed, 0, 1);
  const v = Array.from(u, (x) => lo + Math.floor(x * (hi - lo)));
  return big ? BigInt64Array.from(v, BigInt) : Int32Array.from(v);
};

const IMG = [{ B: 1, H: 5, W: 7 }, { B: 2, H: 8, W: 6 }];
const SEQ = [{ B: 1, S: 5 }, { B: 2, S: 9 }];

function attentionCase(fused: boolean, causal: boolean): OpCase {
  return {
    name: `attention fused=${fused} causal=${causal}`,
    compile: { fusedAttention: fused },
    // Causal masks only make sense for self-attention, so key length follows the query there.
    sizes: causal ? [{ B: 1, S: 4 }, { B: 2, S: 7 }] : [{ B: 1, S: 4, L: 3 }, { B: 2, S: 7, L: 9 }],
    build(g) {
      const q = g.input('q', 'float32', ['B', 'S', 8]);
      const k = causal ? q : g.input('k', 'float32', ['B', 'L', 8]);
      const v = causal ? g.linear(q, randWeight(g, 'att_wv', [8, 8], 31)) : g.input('v', 'float32', ['B', 'L', 8]);
      g.output('y2', g.attention(q, k, v, 2, { causal }));
      g.output('y1', g.attention(q, k, v, 1, { causal }));
      g.output('y4', g.attention(q, k, v, 4, { causal }));
    },
  };
}

const FORWARD_CASES: OpCase[] = [
  {
    name: 'binary ops with broadcasting',
    sizes: IMG,
    gens: { p: positive },
    build(g) {
      const x = g.input('x', 'float32', ['B', 3, 'H', 'W']);
      const y = g.input('y', 'float32', ['B', 1, 'H', 'W']);
      const p = g.input('p', 'float32', [3, 1, 1]);
      const c = randWeight(g, 'bin_c', [3, 1, 1], 11);
      g.output('add', g.add(x, c));
      g.output('add_scalar', g.add(x, 0.5));
      g.output('sub', g.sub(y, x));
      g.output('mul', g.mul(x, y));
      g.output('div', g.div(x, p));
      g.output('pow', g.pow(p, x));
      g.output('pow_scalar', g.pow(g.add(g.mul(y, y), 0.1), 1.5));
      g.output('max', g.max(x, y));
      g.output('max_scalar', g.max(x, 0.25));
    },
  },
  {
    name: 'unary ops',
    sizes: SEQ,
    gens: { p: positive },
    build(g) {
      const x = g.input('x', 'float32', ['B', 'S', 6]);
      const p = g.input('p', 'float32', ['B', 'S', 6]);
      const x3 = g.mul(x, 2); // wider range so tails of gelu/sigmoid are exercised
      g.output('neg', g.neg(x));
      g.output('exp', g.exp(x));
      g.output('log', g.log(p));
      g.output('sqrt', g.sqrt(p));
      g.output('sin', g.sin(x3));
      g.output('cos', g.cos(x3));
      g.output('tanh', g.tanh(x3));
      g.output('relu', g.relu(x));
      g.output('sigmoid', g.sigmoid(x3));
      g.output('silu', g.silu(x3));
      g.output('gelu', g.gelu(x3));
      g.output('gelu_tanh', g.gelu(x3, 'tanh'));
      g.output('quick_gelu', g.quickGelu(x3));
    },
  },
  {
    name: 'matmul with batch broadcasting',
    sizes: [{ B: 1, S: 3, N: 2 }, { B: 3, S: 5, N: 4 }],
    build(g) {
      const a = g.input('a', 'float32', ['B', 2, 'S', 4]);
      const b = g.input('b', 'float32', [2, 4, 'N']);
      const w = randWeight(g, 'mm_w', [4, 5], 12);
      g.output('ab', g.matmul(a, b));
      g.output('aw', g.matmul(a, w));
    },
  },
  {
    name: 'linear (weight, bias, fed weight)',
    sizes: SEQ,
    build(g) {
      const x = g.input('x', 'float32', ['B', 'S', 6]);
      const fed = g.input('w', 'float32', [3, 6]);
      g.output('wb', g.linear(x, randWeight(g, 'lin_w', [4, 6], 13), randWeight(g, 'lin_b', [4], 14)));
      g.output('nobias', g.linear(x, randWeight(g, 'lin_w2', [5, 6], 15)));
      g.output('fed', g.linear(x, fed));
    },
  },
  {
    name: 'conv2d (stride, padding, dilation, groups)',
    sizes: [{ B: 1, H: 5, W: 7 }, { B: 2, H: 8, W: 6 }, { B: 1, H: 9, W: 9 }],
    build(g) {
      const x = g.input('x', 'float32', ['B', 4, 'H', 'W']);
      const w3 = randWeight(g, 'conv_w3', [6, 4, 3, 3], 16);
      const b6 = randWeight(g, 'conv_b6', [6], 17);
      g.output('k3p1', g.conv2d(x, w3, b6, { padding: 1 }));
      g.output('k3s2', g.conv2d(x, w3, undefined, { stride: 2, padding: 1 }));
      g.output('dil2', g.conv2d(x, w3, b6, { padding: 2, dilation: 2 }));
      g.output('valid', g.conv2d(x, w3, b6));
      g.output('groups2', g.conv2d(x, randWeight(g, 'conv_wg', [6, 2, 3, 3], 18), b6, { padding: 1, groups: 2 }));
      g.output('depthwise', g.conv2d(x, randWeight(g, 'conv_dw', [4, 1, 3, 3], 19), undefined, { padding: 1, groups: 4, stride: 2 }));
      g.output('k1', g.conv2d(x, randWeight(g, 'conv_w1', [3, 4, 1, 1], 20), undefined));
    },
  },
  {
    name: 'group_norm rank 4 and rank 3, weights and fed affine',
    sizes: [{ B: 1, H: 3, W: 5, S: 7 }, { B: 2, H: 6, W: 4, S: 3 }],
    build(g) {
      // Offset and scale the data so that mean and variance matter.
      const x = g.add(g.mul(g.input('x', 'float32', ['B', 8, 'H', 'W']), 3), 1);
      const s = g.add(g.mul(g.input('s', 'float32', ['B', 6, 'S']), 0.5), -2);
      const gw = randWeight(g, 'gn_w', [8], 21);
      const gb = randWeight(g, 'gn_b', [8], 22);
      g.output('r4', g.groupNorm(x, 4, gw, gb));
      g.output('r4_g1', g.groupNorm(x, 1, randWeight(g, 'gn_w1', [8], 23), randWeight(g, 'gn_b1', [8], 24), 1e-6));
      g.output('r3', g.groupNorm(s, 3, randWeight(g, 'gn3_w', [6], 25), randWeight(g, 'gn3_b', [6], 26)));
      g.output('r4_fed', g.groupNorm(x, 2, g.input('fw', 'float32', [8]), g.input('fb', 'float32', [8])));
      g.output('r3_fed', g.groupNorm(s, 6, g.input('fw3', 'float32', [6]), g.input('fb3', 'float32', [6]), 1e-3));
      // The rank-4 norm's weights again at rank 3: their baked layout must not follow the first consumer.
      g.output('r3_shared', g.groupNorm(g.input('t', 'float32', ['B', 8, 'S']), 4, gw, gb));
    },
  },
  {
    name: 'layer_norm',
    sizes: SEQ,
    build(g) {
      const x = g.add(g.mul(g.input('x', 'float32', ['B', 'S', 6]), 4), 3);
      g.output('ln', g.layerNorm(x, randWeight(g, 'ln_w', [6], 27), randWeight(g, 'ln_b', [6], 28)));
      g.output('ln_eps', g.layerNorm(x, randWeight(g, 'ln_w', [6], 27), randWeight(g, 'ln_b', [6], 28), 1e-2));
    },
  },
  {
    name: 'softmax',
    sizes: SEQ,
    build(g) {
      const x = g.mul(g.input('x', 'float32', ['B', 'S', 6]), 3);
      g.output('last', g.softmax(x));
      g.output('axis1', g.softmax(x, 1));
      g.output('axis0', g.softmax(x, 0));
    },
  },
  attentionCase(true, false),
  attentionCase(false, false),
  attentionCase(true, true),
  attentionCase(false, true),
  {
    name: 'upsample_nearest',
    sizes: [{ B: 1, H: 3, W: 5 }, { B: 2, H: 4, W: 1 }],
    build(g) {
      const x = g.input('x', 'float32', ['B', 2, 'H', 'W']);
      g.output('x2', g.upsampleNearest(x));
      g.output('x3', g.upsampleNearest(x, 3));
    },
  },
  {
    // The skip sizes of 6x10 and 7x9 latents after three stride-2 downsamples, walked back up.
    name: 'upsample_nearest_like at odd UNet skip sizes',
    sizes: [
      { B: 1, h: 3, w: 5, H: 6, W: 10 },
      { B: 2, h: 4, w: 5, H: 7, W: 9 },
      { B: 1, h: 2, w: 3, H: 4, W: 5 },
      { B: 1, h: 1, w: 2, H: 2, W: 3 },
      { B: 1, h: 6, w: 4, H: 10, W: 6 },
      { B: 1, h: 5, w: 7, H: 5, W: 7 },
    ],
    build(g) {
      const x = g.input('x', 'float32', ['B', 3, 'h', 'w']);
      const ref = g.input('ref', 'float32', ['B', 2, 'H', 'W']);
      g.output('up', g.upsampleNearestLike(x, ref));
    },
  },
  {
    name: 'concat',
    sizes: IMG,
    build(g) {
      const x = g.input('x', 'float32', ['B', 2, 'H', 'W']);
      const y = g.input('y', 'float32', ['B', 3, 'H', 'W']);
      g.output('c1', g.concat([x, y, x], 1));
      g.output('c_last', g.concat([x, x], -1));
      g.output('c0', g.concat([x, x], 0));
    },
  },
  {
    name: 'slice (negative and oversized bounds)',
    sizes: [{ B: 1, S: 5 }, { B: 2, S: 9 }],
    build(g) {
      const x = g.input('x', 'float32', ['B', 'S', 6]);
      g.output('head', g.slice(x, 1, 0, 2));
      g.output('tail_big', g.slice(x, 1, 1, 2 ** 31));
      g.output('neg', g.slice(x, 1, -3, -1));
      g.output('neg_start_big_end', g.slice(x, -1, -4, Number.MAX_SAFE_INTEGER));
      g.output('empty', g.slice(x, 2, 4, 2));
      g.output('chunk1', g.chunk(x, 3, -1)[1]!);
      g.output('inf', g.slice(x, 1, -Infinity, Infinity));
      g.output('inf_tail', g.slice(x, 2, 3, Infinity));
    },
  },
  {
    name: 'reshape (0 and -1), reshape_like, transpose',
    sizes: IMG,
    build(g) {
      const x = g.input('x', 'float32', ['B', 4, 'H', 'W']);
      const seq = g.reshape(g.transpose(x, [0, 2, 3, 1]), [0, -1, 4]);
      g.output('seq', seq);
      g.output('heads', g.transpose(g.reshape(seq, [0, 0, 2, 2]), [0, 2, 1, 3]));
      g.output('flat', g.reshape(x, [-1]));
      g.output('t', g.transpose(x, [3, 1, 0, 2]));
      g.output('back', g.reshapeLike(g.transpose(seq, [0, 2, 1]), x));
    },
  },
  {
    name: 'reduce_mean / reduce_sum',
    sizes: IMG,
    build(g) {
      const x = g.input('x', 'float32', ['B', 4, 'H', 'W']);
      g.output('mean_c', g.reduceMean(x, [1]));
      g.output('mean_hw', g.reduceMean(x, [2, 3], false));
      g.output('mean_last', g.reduceMean(x, [-1]));
      g.output('sum_c', g.reduceSum(x, [1], false));
      g.output('sum_all', g.reduceSum(x, [0, 1, 2, 3]));
      g.output('sum_neg', g.reduceSum(x, [-2, -1]));
    },
  },
  {
    name: 'cast',
    sizes: SEQ,
    gens: { ids: ints(-50, 50, false) },
    build(g) {
      // Scaled and offset away from integers so truncation is unambiguous in float32.
      const x = g.add(g.mul(g.input('x', 'float32', ['B', 'S', 4]), 4), 0.01);
      const ids = g.input('ids', 'int32', ['B', 'S']);
      g.output('i32', g.cast(x, 'int32'));
      g.output('i64', g.cast(x, 'int64'));
      g.output('bool', g.cast(g.relu(x), 'bool'));
      g.output('f32', g.cast(ids, 'float32'));
      g.output('roundtrip', g.cast(g.cast(g.cast(x, 'int64'), 'int32'), 'float32'));
    },
  },
  {
    name: 'gather (embedding lookups)',
    sizes: SEQ,
    gens: { ids64: ints(0, 10, true), ids32: ints(-10, 10, false) },
    build(g) {
      const table = randWeight(g, 'emb', [10, 6], 29);
      g.output('emb64', g.gather(table, g.input('ids64', 'int64', ['B', 'S'])));
      g.output('emb32_neg', g.gather(table, g.input('ids32', 'int32', ['B', 'S'])));
      const x = g.input('x', 'float32', ['B', 5, 3]);
      g.output('axis1', g.gather(x, g.constant(new BigInt64Array([4n, 0n, -1n, 2n]), [2, 2]), 1));
    },
  },
  {
    name: 'inference-only ops (acos, select, reduce_max, reshape_to)',
    sizes: IMG,
    build(g) {
      const x = g.input('x', 'float32', ['B', 3, 'H', 'W']);
      const t = g.tanh(x);
      g.output('acos', g.acos(g.mul(t, 0.999)));
      g.output('select', g.select(g.greater(x, 0.1), x, g.neg(g.exp(x))));
      g.output('select_scalar', g.select(g.greater(x, 0), 0, x));
      g.output('max_hw', g.reduceMax(x, [2, 3]));
      g.output('max_c', g.reduceMax(x, [1], false));
      const shape = g.constant(new BigInt64Array([0n, -1n, 3n]), [3]);
      g.output('reshape_to', g.reshapeTo(g.transpose(x, [0, 2, 3, 1]), shape, ['B', 'HW', 3]));
    },
  },
];

const CASES = [...FORWARD_CASES, ...AUTODIFF_CASES];

function opsOf(c: OpCase): Set<OpName> {
  const g = new GraphBuilder();
  c.build(g);
  return new Set(g.graph.nodes.map((n) => n.op));
}

describe('IR ops: ONNX lowering vs float64 reference', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const g = new GraphBuilder();
      c.build(g);
      expect(c.sizes.length).toBeGreaterThanOrEqual(2);
      await checkAgainstReference(g.graph, c.sizes, { gens: c.gens, compile: c.compile, label: c.name });
    });
  }

  it('covers every op of OPS', () => {
    const covered = new Set<OpName>();
    for (const c of CASES) for (const op of opsOf(c)) covered.add(op);
    const missing = (Object.keys(OPS) as OpName[]).filter((op) => !covered.has(op));
    expect(missing, `ops without a test: ${missing.join(', ')}`).toEqual([]);
  });

  it('covers both attention lowerings, causal and not', () => {
    const att = CASES.filter((c) => opsOf(c).has('attention'));
    const variants = new Set(att.map((c) => `${c.compile?.fusedAttention ?? true}/${c.name.includes('causal=true')}`));
    expect(variants).toEqual(new Set(['true/false', 'false/false', 'true/true', 'false/true']));
  });
});
