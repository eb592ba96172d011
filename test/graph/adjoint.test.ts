/**
 * The gradient helper ops checked against the forward ops they transpose, entirely in the float64 reference:
 * for a linear map F and its helper F^T, <F(x), dy> = <x, F^T(dy)> must hold to rounding. This ties the
 * autodiff oracle to the forward oracle without finite differences.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder, type T } from '../../runtime/graph/index.js';
import { evaluateReference, type RefFeed, type RefTensor } from '../../runtime/graph/reference.js';
import { resolve, uniform, type Sizes } from './harness.js';

const dot = (a: RefTensor, b: RefTensor) => {
  expect(a.dims).toEqual(b.dims);
  return a.data.reduce((s, v, i) => s + v * b.data[i]!, 0);
};

/** Evaluates a graph on seeded float64 feeds. */
function evaluate(g: GraphBuilder, sizes: Sizes, seed: number) {
  const feeds: Record<string, RefFeed> = {};
  g.graph.inputs.forEach((inp, i) => {
    const dims = resolve(g.graph.values[inp.value]!.shape, sizes);
    feeds[inp.name] = { data: Float64Array.from(uniform(dims.reduce((a, b) => a * b, 1), seed * 31 + i)), dims };
  });
  return { out: evaluateReference(g.graph, feeds), feeds: feeds as Record<string, { data: Float64Array; dims: number[] }> };
}

function expectAdjoint(lhs: number, rhs: number, what: string) {
  expect(Math.abs(lhs - rhs), `${what}: <Fx, dy> = ${lhs}, <x, F^T dy> = ${rhs}`).toBeLessThanOrEqual(1e-11 * Math.max(1, Math.abs(lhs)));
}

const CONVS = [
  { stride: 1, padding: 1, dilation: 1, groups: 1, w: [6, 4, 3, 3] },
  { stride: 2, padding: 1, dilation: 1, groups: 1, w: [6, 4, 3, 3] },
  { stride: 2, padding: 0, dilation: 2, groups: 2, w: [4, 2, 3, 2] },
  { stride: 3, padding: 2, dilation: 1, groups: 4, w: [8, 1, 2, 3] },
];

describe('gradient helpers are the adjoints of their forward ops (float64 reference)', () => {
  for (const [i, c] of CONVS.entries()) {
    it(`conv2d_grad_input and conv2d_grad_weight, ${JSON.stringify(c)}`, () => {
      for (const sizes of [{ H: 5, W: 7 }, { H: 8, W: 6 }]) {
        const g = new GraphBuilder();
        const x = g.input('x', 'float32', [2, 4, 'H', 'W']);
        const w = g.input('w', 'float32', c.w);
        const o = { stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups };
        const y = g.conv2d(x, w, undefined, o);
        const dy = g.input('dy', 'float32', y.shape.map((d, k) => (typeof d === 'number' ? d : `Y${k}`)));
        g.output('y', y);
        g.output('dx', g.conv2dGradInput(dy, w, x, o));
        g.output('dw', g.conv2dGradWeight(x, dy, { ...o, kernel: c.w.slice(2) }));
        // Output spatial sizes, needed to feed dy, come from a forward pass first.
        const yDims = evaluate(stripTo(g, 'y'), sizes, i).out.y!.dims;
        const { out, feeds } = evaluate(g, { ...sizes, Y2: yDims[2]!, Y3: yDims[3]! }, i);
        const dyT = feeds.dy!;
        expectAdjoint(dot(out.y!, dyT), dot(feeds.x!, out.dx!), 'grad_input');
        expectAdjoint(dot(out.y!, dyT), dot(feeds.w!, out.dw!), 'grad_weight');
      }
    });
  }

  it('upsample_nearest_grad transposes upsample_nearest_like and upsample_nearest', () => {
    for (const [h, w, H, W] of [[3, 5, 6, 10], [4, 5, 7, 9], [6, 4, 10, 6], [2, 2, 4, 4]] as const) {
      const g = new GraphBuilder();
      const x = g.input('x', 'float32', [1, 2, 'h', 'w']);
      const dy = g.input('dy', 'float32', [1, 2, 'H', 'W']);
      g.output('y', g.upsampleNearestLike(x, dy));
      g.output('dx', g.upsampleNearestGrad(dy, x));
      if (H === 2 * h && W === 2 * w) g.output('y2', g.upsampleNearest(x));
      const { out, feeds } = evaluate(g, { h, w, H, W }, h * w);
      expectAdjoint(dot(out.y!, feeds.dy!), dot(feeds.x!, out.dx!), `${h}x${w} -> ${H}x${W}`);
      if (out.y2) expect(Array.from(out.y2.data)).toEqual(Array.from(out.y!.data));
    }
  });

  it('slice_grad transposes slice', () => {
    for (const [axis, start, end] of [[1, 0, 2], [1, 1, 2 ** 31], [1, -3, -1], [2, 2, 5], [0, 1, 2]] as const) {
      const g = new GraphBuilder();
      const x = g.input('x', 'float32', [2, 'S', 6]);
      const y = g.slice(x, axis, start, end);
      const dy = g.input('dy', 'float32', y.shape.map((d, k) => (typeof d === 'number' ? d : `Y${k}`)));
      g.output('y', y);
      g.output('dx', g.sliceGrad(dy, x, axis, start, end));
      const yDims = evaluate(stripTo(g, 'y'), { S: 7 }, 1).out.y!.dims;
      const { out, feeds } = evaluate(g, { S: 7, Y1: yDims[1]! }, 2);
      expectAdjoint(dot(out.y!, feeds.dy!), dot(feeds.x!, out.dx!), `slice(${axis}, ${start}, ${end})`);
    }
  });

  it('concat_grad transposes concat', () => {
    const g = new GraphBuilder();
    const a = g.input('a', 'float32', [2, 'P', 3]);
    const b = g.input('b', 'float32', [2, 'Q', 3]);
    const c = g.input('c', 'float32', [2, 1, 3]);
    g.output('y', g.concat([a, b, c], 1));
    const dy = g.input('dy', 'float32', [2, 'T', 3]);
    g.output('da', g.concatGrad(dy, [a], 1));
    g.output('db', g.concatGrad(dy, [a, b], 1));
    g.output('dc', g.concatGrad(dy, [a, b, c], 1));
    const { out, feeds } = evaluate(g, { P: 2, Q: 4, T: 7 }, 3);
    expectAdjoint(dot(out.y!, feeds.dy!), dot(feeds.a!, out.da!) + dot(feeds.b!, out.db!) + dot(feeds.c!, out.dc!), 'concat');
  });

  it('reduce_grad transposes reduce_sum and reduce_mean', () => {
    for (const [axes, keepdims] of [[[1], true], [[0, 2], false], [[-1], false], [[0, 1, 2], true]] as const) {
      for (const mean of [false, true]) {
        const g = new GraphBuilder();
        const x = g.input('x', 'float32', [2, 3, 4]);
        const y = mean ? g.reduceMean(x, [...axes], keepdims) : g.reduceSum(x, [...axes], keepdims);
        // Autodiff passes the forward node's axes, which the builder has made non-negative.
        const fwdAxes = g.graph.nodes.at(-1)!.attrs.axes as number[];
        const dy = g.input('dy', 'float32', y.shape);
        g.output('y', y);
        g.output('dx', g.reduceGrad(dy, x, fwdAxes, keepdims, mean));
        const { out, feeds } = evaluate(g, {}, 4);
        expectAdjoint(dot(out.y!, feeds.dy!), dot(feeds.x!, out.dx!), `reduce ${axes} keep=${keepdims} mean=${mean}`);
      }
    }
  });

  it('attention_probs is the softmax that attention applies to v', () => {
    for (const causal of [false, true]) {
      const g = new GraphBuilder();
      const q = g.input('q', 'float32', [2, 5, 8]);
      const k = causal ? q : g.input('k', 'float32', [2, 5, 8]);
      const v = g.input('v', 'float32', [2, 5, 8]);
      const heads = 2;
      const split = (t: T) => g.transpose(g.reshape(t, [0, 0, heads, 4]), [0, 2, 1, 3]);
      const probs = g.attentionProbs(q, k, heads, causal);
      g.output('viaProbs', g.reshape(g.transpose(g.matmul(probs, split(v)), [0, 2, 1, 3]), [0, 0, 8]));
      g.output('att', g.attention(q, k, v, heads, { causal }));
      g.output('probs', probs);
      const { out } = evaluate(g, {}, causal ? 6 : 5);
      out.viaProbs!.data.forEach((val, i) => expect(Math.abs(val - out.att!.data[i]!)).toBeLessThan(1e-12));
      const p = out.probs!;
      expect(p.dims).toEqual([2, heads, 5, 5]);
      for (let r = 0; r < p.data.length / 5; r++) {
        const row = p.data.subarray(r * 5, r * 5 + 5);
        expect(row.reduce((s, x) => s + x, 0)).toBeCloseTo(1, 12);
        if (causal) row.forEach((x, j) => j > r % 5 && expect(x).toBe(0));
      }
    }
  });
});

/** A copy of the builder's graph that computes only output `name` (for a forward pass before dy exists). */
function stripTo(g: GraphBuilder, name: string): GraphBuilder {
  const c = new GraphBuilder();
  const out = g.graph.outputs.find((o) => o.name === name)!;
  const needed = new Set<number>([out.value]);
  for (const n of [...g.graph.nodes].reverse()) if (needed.has(n.outputs[0]!)) n.inputs.forEach((i) => needed.add(i));
  Object.assign(c.graph, {
    ...g.graph,
    nodes: g.graph.nodes.filter((n) => needed.has(n.outputs[0]!)),
    inputs: g.graph.inputs.filter((i) => needed.has(i.value)),
    outputs: [out],
  });
  return c;
}
