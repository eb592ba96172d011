/** The float64 reference interpreter on hand-computed cases, independent of onnxruntime. */
import { describe, expect, it } from 'vitest';
import { GraphBuilder, type T } from '../../runtime/graph/index.js';
import { erf, evaluateReference, type RefFeed } from '../../runtime/graph/reference.js';

const f64 = (...v: number[]) => Float64Array.from(v);

/** Builds a one-input graph, evaluates it on `data`, returns the single output. */
function run1(dims: number[], data: number[], body: (g: GraphBuilder, x: T) => T) {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', dims);
  g.output('y', body(g, x));
  const y = evaluateReference(g.graph, { x: { data: Float64Array.from(data), dims } }).y!;
  return { dims: y.dims, data: Array.from(y.data) };
}

const iota = (n: number, from = 1) => Array.from({ length: n }, (_, i) => i + from);

describe('reference interpreter', () => {
  it('erf matches tabulated values to ~1e-15', () => {
    const table: Array<[number, number]> = [
      [0, 0],
      [0.1, 0.1124629160182849],
      [0.5, 0.5204998778130465],
      [1, 0.8427007929497149],
      [-1.5, -0.9661051464753108],
      [2, 0.9953222650189527],
      [3, 0.9999779095030014],
      [4, 0.9999999845827421],
      [5.5, 0.9999999999999927],
      [7, 1],
    ];
    for (const [x, v] of table) expect(Math.abs(erf(x) - v), `erf(${x})`).toBeLessThan(2e-15);
    expect(erf(NaN)).toBeNaN();
  });

  it('gelu, quick_gelu and silu at known points', () => {
    const gelu = run1([3], [-1, 0, 1], (g, x) => g.gelu(x)).data;
    expect(gelu[2]).toBeCloseTo(0.8413447460685429, 15);
    expect(gelu[0]).toBeCloseTo(-0.15865525393145707, 15);
    const tanhGelu = run1([1], [1], (g, x) => g.gelu(x, 'tanh')).data[0]!;
    expect(tanhGelu).toBeCloseTo(0.8411919906082768, 15);
    expect(run1([1], [1], (g, x) => g.quickGelu(x)).data[0]).toBeCloseTo(1 / (1 + Math.exp(-1.702)), 15);
    expect(run1([1], [2], (g, x) => g.silu(x)).data[0]).toBeCloseTo(2 / (1 + Math.exp(-2)), 15);
  });

  it('conv2d by hand: padding, stride, dilation, groups, bias', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [1, 2, 3, 3]);
    const ones = g.constant(new Float32Array(8).fill(1), [2, 1, 2, 2]);
    const bias = g.constant(new Float32Array([0, 100]), [2]);
    g.output('valid', g.conv2d(x, ones, bias, { groups: 2 }));
    g.output('s2p1', g.conv2d(x, ones, undefined, { groups: 2, stride: 2, padding: 1 }));
    g.output('dil', g.conv2d(x, ones, undefined, { groups: 2, dilation: 2 }));
    const y = evaluateReference(g.graph, { x: { data: Float64Array.from(iota(18)), dims: [1, 2, 3, 3] } });
    // Channel 0 is 1..9, channel 1 is 10..18.
    expect(y.valid!.dims).toEqual([1, 2, 2, 2]);
    expect(Array.from(y.valid!.data)).toEqual([12, 16, 24, 28, 148, 152, 160, 164]);
    expect(y.s2p1!.dims).toEqual([1, 2, 2, 2]);
    expect(Array.from(y.s2p1!.data)).toEqual([1, 5, 11, 28, 10, 23, 29, 64]);
    expect(Array.from(y.dil!.data)).toEqual([1 + 3 + 7 + 9, 10 + 12 + 16 + 18]);
  });

  it('upsample_nearest_like picks floor(o * in / out)', () => {
    const pick = (inW: number, outW: number) => {
      const g = new GraphBuilder();
      const x = g.input('x', 'float32', [1, 1, 1, inW]);
      const ref = g.input('r', 'float32', [1, 1, 1, outW]);
      g.output('y', g.upsampleNearestLike(x, ref));
      const feeds: Record<string, RefFeed> = { x: { data: f64(...iota(inW, 0)), dims: [1, 1, 1, inW] }, r: { data: new Float64Array(outW), dims: [1, 1, 1, outW] } };
      return Array.from(evaluateReference(g.graph, feeds).y!.data);
    };
    expect(pick(3, 5)).toEqual([0, 0, 1, 1, 2]);
    expect(pick(2, 3)).toEqual([0, 0, 1]);
    expect(pick(5, 10)).toEqual([0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
    expect(pick(6, 10)).toEqual([0, 0, 1, 1, 2, 3, 3, 4, 4, 5]);
    expect(run1([1, 1, 2, 1], [7, 8], (g, x) => g.upsampleNearest(x, 3)).data).toEqual([...Array(9).fill(7), ...Array(9).fill(8)]);
  });

  it('group_norm uses the biased variance and per-channel affine', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [1, 2, 2]);
    g.output('y', g.groupNorm(x, 1, g.constant(new Float32Array([1, 2]), [2]), g.constant(new Float32Array([0, 10]), [2]), 0));
    const y = evaluateReference(g.graph, { x: { data: f64(1, 2, 3, 4), dims: [1, 2, 2] } }).y!;
    const s = Math.sqrt(1.25);
    expect(Array.from(y.data).map((v) => +v.toFixed(12))).toEqual([-1.5 / s, -0.5 / s, 2 * (0.5 / s) + 10, 2 * (1.5 / s) + 10].map((v) => +v.toFixed(12)));
  });

  it('causal attention: the first query sees only the first key', () => {
    const g = new GraphBuilder();
    const q = g.input('q', 'float32', [1, 3, 2]);
    const v = g.input('v', 'float32', [1, 3, 2]);
    g.output('y', g.attention(q, q, v, 1, { causal: true }));
    const y = evaluateReference(g.graph, { q: { data: f64(1, 0, 0, 1, 1, 1), dims: [1, 3, 2] }, v: { data: f64(5, 6, 7, 8, 9, 10), dims: [1, 3, 2] } }).y!;
    expect(Array.from(y.data.subarray(0, 2))).toEqual([5, 6]);
    // Second query: scores [0, 1] / sqrt(2) over keys 0 and 1.
    const w1 = 1 / (1 + Math.exp(-1 / Math.SQRT2));
    expect(y.data[2]).toBeCloseTo(5 * (1 - w1) + 7 * w1, 14);
  });

  it('shape ops: slice clamping, reshape 0/-1, gather with negative ids, reductions, casts', () => {
    expect(run1([5], iota(5), (g, x) => g.slice(x, 0, -2, 1e12)).data).toEqual([4, 5]);
    expect(run1([5], iota(5), (g, x) => g.slice(x, 0, -100, 2)).data).toEqual([1, 2]);
    expect(run1([2, 3, 2], iota(12), (g, x) => g.reshape(x, [0, -1])).dims).toEqual([2, 6]);
    const gathered = (() => {
      const g = new GraphBuilder();
      const table = g.input('t', 'float32', [3, 2]);
      g.output('y', g.gather(table, g.input('i', 'int64', [2])));
      return evaluateReference(g.graph, { t: { data: f64(...iota(6)), dims: [3, 2] }, i: { data: BigInt64Array.from([-1n, 0n]), dims: [2] } }).y!;
    })();
    expect([gathered.dims, Array.from(gathered.data)]).toEqual([[2, 2], [5, 6, 1, 2]]);
    expect(run1([2, 3], iota(6), (g, x) => g.reduceSum(x, [0], false)).data).toEqual([5, 7, 9]);
    expect(run1([2, 3], iota(6), (g, x) => g.reduceMean(x, [-1])).data).toEqual([2, 5]);
    expect(run1([2, 3], iota(6), (g, x) => g.reduceSum(x, [])).data).toEqual([21]);
    expect(run1([4], [-2.7, 2.7, 0, 0.1], (g, x) => g.cast(x, 'int32')).data).toEqual([-2, 2, 0, 0]);
    expect(run1([4], [-2.7, 2.7, 0, 0.1], (g, x) => g.cast(x, 'bool')).data).toEqual([1, 1, 0, 1]);
    expect(run1([2], [7, -7], (g, x) => g.div(g.cast(x, 'int32'), g.constant(new Int32Array([2]), [1]))).data).toEqual([3, -3]);
    expect(run1([3], [1, 2, 3], (g, x) => g.softmax(x)).data.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 15);
  });

  it('uses source.load() for weights unless a replacement is given, and reports missing feeds', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [1, 2]);
    const w = g.weight('w', [1, 2], { key: 'ref-w', load: () => new Float32Array([1, 10]) });
    g.output('y', g.linear(x, w));
    const feeds = { x: { data: f64(3, 4), dims: [1, 2] } };
    expect(Array.from(evaluateReference(g.graph, feeds).y!.data)).toEqual([43]);
    expect(Array.from(evaluateReference(g.graph, feeds, new Map([['w', f64(2, 0)]])).y!.data)).toEqual([6]);
    expect(() => evaluateReference(g.graph, {})).toThrow(/missing feed "x"/);
    expect(() => evaluateReference(g.graph, feeds, new Map([['w', f64(1)]]))).toThrow(/weight "w"/);
  });
});
