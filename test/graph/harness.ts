/** Shared helpers for graph tests: seeded data, feeds for symbolic shapes, and ORT-vs-reference comparison. */
import { expect } from 'vitest';
import type { GraphBuilder, Graph, Shape, T } from '../../runtime/graph/index.js';
import { compileGraph, type CompileOptions, type TensorData } from '../../runtime/graph/index.js';
import { evaluateReference, type RefFeed } from '../../runtime/graph/reference.js';

/** mulberry32: tiny, seedable, good enough for test data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function uniform(n: number, seed: number, lo = -2, hi = 2): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** A seeded random weight; the key embeds the seed so the session cache never confuses two weights. */
export function randWeight(g: GraphBuilder, name: string, shape: number[], seed: number, opts: { overridable?: boolean; lo?: number; hi?: number } = {}): T {
  const n = shape.reduce((a, b) => a * b, 1);
  return g.weight(name, shape, { key: `test:${name}:${shape.join('x')}:${seed}:${opts.lo ?? -1}:${opts.hi ?? 1}`, load: () => uniform(n, seed, opts.lo ?? -1, opts.hi ?? 1) }, { overridable: opts.overridable ?? false });
}

export type Sizes = Record<string, number>;
export type Gen = (n: number, seed: number, sizes: Sizes) => TensorData['data'];

export function resolve(shape: Shape, sizes: Sizes): number[] {
  return shape.map((d) => {
    if (typeof d === 'number') return d;
    const v = sizes[d];
    if (v === undefined) throw new Error(`test: no size for symbolic dim "${d}"`);
    return v;
  });
}

export function makeFeeds(graph: Graph, sizes: Sizes, gens: Record<string, Gen> = {}, seed = 1): Record<string, TensorData> {
  const feeds: Record<string, TensorData> = {};
  graph.inputs.forEach((inp, i) => {
    const dims = resolve(graph.values[inp.value]!.shape, sizes);
    const n = dims.reduce((a, b) => a * b, 1);
    const gen = gens[inp.name];
    feeds[inp.name] = { data: gen ? gen(n, seed * 100 + i, sizes) : uniform(n, seed * 100 + i), dims };
  });
  return feeds;
}

export function toNumbers(data: ArrayLike<number | bigint | boolean>): number[] {
  return Array.from(data as ArrayLike<number | bigint | boolean>, (v) => Number(v));
}

export const F32_TOL = { atol: 1e-5, rtol: 1e-4 };

/**
 * Per element: |a - e| <= atol + rtol * |e|. Stricter than the conformance rule (which scales by max|e|), so
 * that a slightly wrong constant in an elementwise op cannot hide behind the largest output value.
 */
export function expectClose(actual: ArrayLike<number | bigint | boolean>, expected: ArrayLike<number>, what: string, tol = F32_TOL): void {
  const a = toNumbers(actual);
  expect(a.length, `${what}: length`).toBe(expected.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const e = expected[i]!;
    const ratio = Math.abs(a[i]! - e) / (tol.atol + tol.rtol * Math.abs(e));
    if (!(ratio <= worst)) {
      worst = ratio;
      at = i;
    }
  }
  expect(worst, `${what}: worst element ${at}: got ${a[at]}, want ${expected[at]} (error/limit ${worst})`).toBeLessThanOrEqual(1);
}

/**
 * Compiles `graph` once and, for every size set, runs it and compares each output (values and dims) with the
 * float64 reference. Returns the session so callers can check caching.
 */
export async function checkAgainstReference(
  graph: Graph,
  sizesList: Sizes[],
  o: { gens?: Record<string, Gen>; compile?: CompileOptions; tol?: typeof F32_TOL; label?: string } = {},
) {
  const session = await compileGraph(graph, o.compile);
  for (const [k, sizes] of sizesList.entries()) {
    const feeds = makeFeeds(graph, sizes, o.gens, k + 1);
    const got = await session.run(feeds);
    const want = evaluateReference(graph, feeds as Record<string, RefFeed>);
    for (const out of graph.outputs) {
      const what = `${o.label ?? 'graph'} ${JSON.stringify(sizes)} output ${out.name}`;
      expect([...got[out.name]!.dims], `${what}: dims`).toEqual(want[out.name]!.dims);
      expectClose(got[out.name]!.data as ArrayLike<number>, want[out.name]!.data, what, o.tol);
    }
  }
  return session;
}
