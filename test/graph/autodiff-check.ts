/**
 * Gradient checking for autodiff tests: the compiled gradient graph (ORT, float32) and the same graph run by
 * the float64 reference interpreter are both compared against central finite differences of the reference
 * forward pass.
 */
import { expect } from 'vitest';
import { GraphBuilder, compileGraph, type CompileOptions, type Graph, type T, type TensorData } from '../../runtime/graph/index.js';
import { evaluateReference, type RefFeed } from '../../runtime/graph/reference.js';
import { buildGradientGraph, planGradient } from '../../runtime/graph/autodiff/index.js';
import { makeFeeds, resolve, type Gen, type Sizes } from './harness.js';

export interface GradCase {
  name: string;
  /** Builds the forward graph; returns the tensors whose probe-weighted sum is the loss. */
  build(g: GraphBuilder): T[];
  /** Input or weight names to differentiate with respect to. */
  wrt: string[];
  sizes: Sizes[];
  gens?: Record<string, Gen>;
  compile?: CompileOptions;
}

export const FD_STEP = 1e-3;

/**
 * loss = Σ_k Σ sin(1.3·outs[k] + 0.4·k): a nonlinear read-out, so each output element gets its own adjoint
 * (a plain sum would feed ones everywhere and hide transposition mistakes), with no extra inputs whose
 * shapes would have to follow derived symbolic dims.
 */
export function withProbeLoss(c: GradCase): Graph {
  const g = new GraphBuilder();
  const outs = c.build(g);
  let loss: T | undefined;
  outs.forEach((o, k) => {
    const term = g.reduceSum(g.sin(g.add(g.mul(o, 1.3), 0.4 * k)), o.shape.map((_, i) => i), false);
    loss = loss ? g.add(loss, term) : term;
  });
  g.output('loss', loss!);
  return g.graph;
}

function weightData(graph: Graph): Map<string, Float64Array> {
  return new Map(graph.weights.map((w) => [w.name, Float64Array.from(w.source.load())]));
}

/**
 * Central differences of the reference loss for every element of each wrt tensor, with the five-point
 * stencil (f(x−2h) − 8f(x−h) + 8f(x+h) − f(x+2h)) / 12h: its O(h⁴) truncation error keeps the oracle far
 * below the float32 error being measured, even where the loss curves sharply.
 */
export function finiteDifferences(graph: Graph, feeds: Record<string, TensorData>, wrt: string[], h = FD_STEP): Map<string, Float64Array> {
  const feeds64: Record<string, RefFeed> = {};
  for (const [k, v] of Object.entries(feeds)) feeds64[k] = v.data instanceof Float32Array ? { data: Float64Array.from(v.data), dims: v.dims } : v;
  const weights = weightData(graph);
  const lossAt = () => evaluateReference(graph, feeds64, weights).loss!.data[0]!;
  const out = new Map<string, Float64Array>();
  for (const name of wrt) {
    const target = (feeds64[name]?.data as Float64Array | undefined) ?? weights.get(name);
    if (!target) throw new Error(`no feed or weight "${name}"`);
    const grad = new Float64Array(target.length);
    for (let i = 0; i < target.length; i++) {
      const x0 = target[i]!;
      const at = (k: number) => {
        target[i] = x0 + k * h;
        return lossAt();
      };
      grad[i] = (at(-2) - 8 * at(-1) + 8 * at(1) - at(2)) / (12 * h);
      target[i] = x0;
    }
    out.set(name, grad);
  }
  return out;
}

/** Worst |a − e| / (|e| + 1e-2·max|e| + 1e-6) over the elements: relative, with a floor for near-zero entries. */
export function relError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = Math.abs(actual[i]! - expected[i]!) / (Math.abs(expected[i]!) + 1e-2 * scale + 1e-6);
    worst = Number.isNaN(e) ? Infinity : Math.max(worst, e);
  }
  return worst;
}

/**
 * Builds the gradient graph once, compiles it once, and at every size set checks ORT's gradients (float32)
 * and the reference interpreter's run of the same gradient graph (float64) against finite differences.
 */
export async function checkGradients(c: GradCase, opts: { recompute?: boolean } = {}): Promise<{ worstOrt: number; worstRef: number }> {
  const forward = withProbeLoss(c);
  const gradGraph = buildGradientGraph(forward, { loss: 'loss', wrt: c.wrt, recompute: opts.recompute });
  const session = await compileGraph(gradGraph, c.compile);
  let worstOrt = 0;
  let worstRef = 0;
  for (const [k, sizes] of c.sizes.entries()) {
    const feeds = makeFeeds(forward, sizes, c.gens, k + 7);
    const fd = finiteDifferences(forward, feeds, c.wrt);
    const got = await session.run(feeds);
    const ref = evaluateReference(gradGraph, feeds as Record<string, RefFeed>);
    for (const name of c.wrt) {
      const what = `${c.name} ${JSON.stringify(sizes)} grad/${name}`;
      const want = fd.get(name)!;
      const ort = got[`grad/${name}`]!;
      const id = forward.inputs.find((i) => i.name === name)?.value ?? forward.weights.find((w) => w.name === name)!.value;
      expect([...ort.dims], `${what}: dims`).toEqual(resolve(forward.values[id]!.shape, sizes));
      const eOrt = relError(ort.data as Float32Array, want);
      const eRef = relError(ref[`grad/${name}`]!.data, want);
      worstOrt = Math.max(worstOrt, eOrt);
      worstRef = Math.max(worstRef, eRef);
      expect(eRef, `${what}: float64 reference run of the gradient graph vs finite differences`).toBeLessThan(1e-6);
      expect(eOrt, `${what}: ORT gradient vs finite differences`).toBeLessThan(1e-3);
    }
  }
  return { worstOrt, worstRef };
}

/** Ops of the forward graph that got a gradient rule. */
export function activeOps(c: GradCase): Set<string> {
  const plan = planGradient(withProbeLoss(c), { loss: 'loss', wrt: c.wrt });
  return new Set(plan.active.map((n) => n.op));
}

