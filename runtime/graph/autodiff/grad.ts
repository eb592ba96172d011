import type { T } from '../builder.js';
import type { Graph, Node, Shape } from '../ir.js';
import { GraphExtender } from './extend.js';
import { Recomputer } from './recompute.js';
import { GRAD_RULES } from './rules.js';
import type { RuleContext } from './types.js';

export interface GradientOptions {
  /** Name of the graph output to differentiate; it must have a fixed shape (its elements are summed). */
  loss: string;
  /** Graph input names or weight names to differentiate with respect to. Weights become run-time inputs. */
  wrt: string[];
  /**
   * Recompute forward activations per block in the backward pass instead of keeping them (see recompute.ts).
   * `true` uses each node's `scope` as its block; a function may group scopes differently (undefined = keep).
   */
  recompute?: boolean | ((node: Node) => string | undefined);
}

export interface GradientPlan {
  loss: number;
  wrt: Map<string, number>;
  /** Forward nodes the loss depends on, in graph order (the rest are dropped). */
  forward: Node[];
  /** Forward nodes that get a gradient rule: they lie on a path from a `wrt` tensor to the loss. */
  active: Node[];
  /** Values whose gradient is needed. */
  needsGrad: Set<number>;
}

/** Resolves names and finds which nodes the loss needs and which of them lie on a gradient path. */
export function planGradient(graph: Graph, opts: Pick<GradientOptions, 'loss' | 'wrt'>): GradientPlan {
  const out = graph.outputs.find((o) => o.name === opts.loss);
  if (!out) throw new Error(`autodiff: no graph output named "${opts.loss}" (outputs: ${graph.outputs.map((o) => o.name).join(', ')})`);
  const lossInfo = graph.values[out.value]!;
  if (lossInfo.type !== 'float32') throw new Error(`autodiff: loss "${opts.loss}" is ${lossInfo.type}, not float32`);
  if (!lossInfo.shape.every((d) => typeof d === 'number')) {
    throw new Error(`autodiff: loss "${opts.loss}" has a symbolic shape [${lossInfo.shape.join(', ')}]; reduce it to a fixed shape first`);
  }
  return { loss: out.value, ...planFrom(graph, [out.value], opts.wrt) };
}

function planFrom(graph: Graph, roots: number[], wrtNames: readonly string[]): Omit<GradientPlan, 'loss'> {
  const wrt = new Map<string, number>();
  for (const name of wrtNames) {
    const id = graph.inputs.find((i) => i.name === name)?.value ?? graph.weights.find((w) => w.name === name)?.value;
    if (id === undefined) throw new Error(`autodiff: "${name}" is neither a graph input nor a weight`);
    if (graph.values[id]!.type !== 'float32') throw new Error(`autodiff: cannot differentiate with respect to ${graph.values[id]!.type} "${name}"`);
    wrt.set(name, id);
  }

  const needed = new Set<number>(roots);
  const forward: Node[] = [];
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i]!;
    if (!n.outputs.some((o) => needed.has(o))) continue;
    forward.push(n);
    for (const v of n.inputs) needed.add(v);
  }
  forward.reverse();

  const needsGrad = new Set<number>(wrt.values());
  const active: Node[] = [];
  for (const n of forward) {
    const o = n.outputs[0]!;
    if (graph.values[o]!.type === 'float32' && n.inputs.some((i) => needsGrad.has(i))) {
      needsGrad.add(o);
      active.push(n);
    }
  }
  return { wrt, forward, active, needsGrad };
}

/**
 * Reverse-mode differentiation of an IR graph. Returns a new graph that computes the forward part the loss
 * needs, then adjoints in reverse topological order; its outputs are the loss (under its own name) and
 * `grad/<name>` for every `wrt` tensor, shaped like that tensor. Frozen weights stay initializers and nodes
 * off the wrt→loss paths get no backward nodes. Symbolic dims survive: backward ops take run-time shapes
 * from forward tensors, so the result compiles once for every batch and image size.
 */
export function buildGradientGraph(graph: Graph, opts: GradientOptions): Graph {
  const plan = planGradient(graph, opts);
  const lossShape = graph.values[plan.loss]!.shape as number[];
  return emitBackward(graph, plan, opts.recompute, opts.loss, (g) => [
    [plan.loss, g.constant(new Float32Array(lossShape.reduce((a, b) => a * b, 1)).fill(1), lossShape)],
  ]);
}

export interface VjpOptions {
  /** Graph outputs whose cotangents are fed: each becomes a float32 input `cotangent/<name>` shaped like it. */
  outputs: string[];
  /** Graph input names or weight names to differentiate with respect to. */
  wrt: string[];
}

/**
 * The vector-Jacobian product of a graph: given cotangents for some of its outputs (run-time inputs), the
 * outputs are `grad/<name>` for every `wrt` tensor, i.e. Σ_o cotangent_o · ∂o/∂wrt. It recomputes the
 * forward part those outputs need, so one piece of a bigger network can be differentiated on its own from
 * its boundary inputs (see segments.ts). Unlike buildGradientGraph it outputs no forward value.
 */
export function buildVjpGraph(graph: Graph, opts: VjpOptions): Graph {
  const roots = opts.outputs.map((name) => {
    const o = graph.outputs.find((x) => x.name === name);
    if (!o) throw new Error(`autodiff: no graph output named "${name}" (outputs: ${graph.outputs.map((x) => x.name).join(', ')})`);
    if (graph.values[o.value]!.type !== 'float32') throw new Error(`autodiff: output "${name}" is not float32`);
    return o;
  });
  const plan = planFrom(graph, roots.map((o) => o.value), opts.wrt);
  const out = emitBackward(graph, plan, undefined, undefined, (g) =>
    roots.map((o) => [o.value, g.input(`cotangent/${o.name}`, 'float32', graph.values[o.value]!.shape)] as [number, T]),
  );
  // Forward inputs the backward never reads need not be fed.
  const used = new Set([...out.nodes.flatMap((n) => n.inputs), ...out.outputs.map((o) => o.value)]);
  out.inputs = out.inputs.filter((i) => used.has(i.value));
  out.weights = out.weights.filter((w) => used.has(w.value));
  return out;
}

function emitBackward(
  graph: Graph,
  plan: Omit<GradientPlan, 'loss'>,
  recompute: GradientOptions['recompute'],
  keepOutput: string | undefined,
  seeds: (g: GraphExtender['g']) => Array<[number, T]>,
): Graph {
  const ext = new GraphExtender(graph, plan.forward);
  const { g } = ext;
  const out = g.graph;
  // Weights we differentiate with respect to must be fed at run time (defaults still come from the source).
  const wrtIds = new Set(plan.wrt.values());
  out.weights = out.weights.map((w) => (wrtIds.has(w.value) ? { ...w, overridable: true } : w));

  const keep = keepOutput === undefined ? [] : [graph.outputs.find((o) => o.name === keepOutput)!.value];
  const blockOf = recompute === true ? (n: Node) => n.scope : recompute || undefined;
  const rc = blockOf ? new Recomputer(ext, graph, plan.forward, blockOf, keep) : undefined;

  const adjoints = new Map<number, T[]>();
  const push = (id: number, t: T) => {
    const list = adjoints.get(id);
    if (list) list.push(t);
    else adjoints.set(id, [t]);
  };
  const sum = (id: number): T | undefined => {
    const list = adjoints.get(id);
    adjoints.delete(id);
    return list?.reduce((a, b) => g.add(a, b));
  };

  for (const [id, seed] of seeds(g)) push(id, seed);

  for (let k = plan.active.length - 1; k >= 0; k--) {
    const node = plan.active[k]!;
    ext.labelled(`grad/${node.scope ?? ''}`, () => {
      const dy = sum(node.outputs[0]!);
      // Reached the loss only through non-differentiable ops (e.g. a cast to int): no gradient flows.
      if (!dy) return;
      const read = (id: number) => (rc ? rc.value(id, dy) : ext.handle(id));
      const c: RuleContext = {
        g,
        node,
        input: (i) => read(node.inputs[i]!),
        ref: (i) => ext.handle(node.inputs[i]!),
        shape: (i) => graph.values[node.inputs[i]!]!.shape,
        output: () => read(node.outputs[0]!),
        needs: (i) => plan.needsGrad.has(node.inputs[i]!),
      };
      const grads = GRAD_RULES[node.op](c, dy);
      node.inputs.forEach((id, i) => {
        const gi = grads[i];
        if (gi && plan.needsGrad.has(id)) push(id, gi);
      });
    });
  }

  out.outputs = keepOutput === undefined ? [] : [{ name: keepOutput, value: keep[0]! }];
  for (const [name, id] of plan.wrt) {
    // A wrt tensor that is also a seeded output (a segment passing a value straight through) keeps its seed.
    const grad = ext.labelled('grad', () => sum(id) ?? zerosLike(ext, id));
    out.outputs.push({ name: `grad/${name}`, value: grad.id });
  }
  return out;
}

function zerosLike(ext: GraphExtender, id: number): T {
  const { g } = ext;
  const shape: Shape = g.graph.values[id]!.shape;
  if (shape.every((d) => typeof d === 'number')) return g.constant(new Float32Array(shape.reduce<number>((a, b) => a * (b as number), 1)), shape as number[]);
  const ones = shape.map(() => 1);
  return g.reduceGrad(g.constant(new Float32Array(1), ones), ext.handle(id), ones.map((_, i) => i), true, false);
}
