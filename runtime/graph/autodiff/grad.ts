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
  const wrt = new Map<string, number>();
  for (const name of opts.wrt) {
    const id = graph.inputs.find((i) => i.name === name)?.value ?? graph.weights.find((w) => w.name === name)?.value;
    if (id === undefined) throw new Error(`autodiff: "${name}" is neither a graph input nor a weight`);
    if (graph.values[id]!.type !== 'float32') throw new Error(`autodiff: cannot differentiate with respect to ${graph.values[id]!.type} "${name}"`);
    wrt.set(name, id);
  }

  const needed = new Set<number>([out.value]);
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
  return { loss: out.value, wrt, forward, active, needsGrad };
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
  const ext = new GraphExtender(graph, plan.forward);
  const { g } = ext;
  const out = g.graph;
  // Weights we differentiate with respect to must be fed at run time (defaults still come from the source).
  const wrtIds = new Set(plan.wrt.values());
  out.weights = out.weights.map((w) => (wrtIds.has(w.value) ? { ...w, overridable: true } : w));

  const blockOf = opts.recompute === true ? (n: Node) => n.scope : opts.recompute || undefined;
  const rc = blockOf ? new Recomputer(ext, graph, plan.forward, blockOf, [plan.loss]) : undefined;

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

  const lossShape = graph.values[plan.loss]!.shape as number[];
  push(plan.loss, g.constant(new Float32Array(lossShape.reduce((a, b) => a * b, 1)).fill(1), lossShape));

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

  out.outputs = [{ name: opts.loss, value: plan.loss }];
  for (const [name, id] of plan.wrt) {
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
