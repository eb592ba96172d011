import { GraphBuilder, T } from '../builder.js';
import type { Graph, Node } from '../ir.js';

/**
 * A builder that continues an existing graph: value ids are kept, so handles made by `handle` refer to the
 * original values and new nodes can use them directly.
 */
export class GraphExtender {
  readonly g = new GraphBuilder();

  constructor(base: Graph, keepNodes: readonly Node[] = base.nodes) {
    const out = this.g.graph;
    out.values.push(...base.values.map((v) => ({ ...v, shape: [...v.shape] })));
    out.nodes.push(...keepNodes);
    out.inputs.push(...base.inputs);
    const used = new Set(keepNodes.flatMap((n) => n.inputs));
    out.weights.push(...base.weights.filter((w) => used.has(w.value)));
    out.consts.push(...base.consts.filter((c) => used.has(c.value)));
  }

  handle(id: number): T {
    const v = this.g.graph.values[id]!;
    return new T(this.g, id, v.type, v.shape);
  }

  /**
   * Runs `emit` and labels the nodes it adds that have no scope yet. Unlike GraphBuilder.scope this does not
   * nest, so recomputation nodes emitted while a gradient rule runs keep their own label.
   */
  labelled<R>(scope: string, emit: () => R): R {
    const nodes = this.g.graph.nodes;
    const from = nodes.length;
    const r = emit();
    for (let i = from; i < nodes.length; i++) nodes[i]!.scope ??= scope;
    return r;
  }

  /** Appends a copy of `node` reading `inputs`; returns its new output value. */
  clone(node: Node, inputs: number[], scope: string): T {
    const values = this.g.graph.values;
    const src = values[node.outputs[0]!]!;
    const id = values.length;
    values.push({ id, type: src.type, shape: [...src.shape] });
    this.g.graph.nodes.push({ op: node.op, inputs, outputs: [id], attrs: node.attrs, scope });
    return this.handle(id);
  }
}
