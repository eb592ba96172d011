import type { Graph, Node } from '../ir.js';
import { buildVjpGraph } from './grad.js';
import { planGradient } from './grad.js';

/**
 * Splits a loss graph into consecutive segments (e.g. the UNet's blocks) for checkpointed training: each
 * segment is a standalone forward graph from its boundary inputs to its boundary outputs, plus the
 * vector-Jacobian product of that graph. A driver (segmented-session.ts) runs the forwards in order keeping
 * only boundary values, then the VJPs in reverse order, each re-running its segment's forward from the kept
 * inputs. Peak memory is then the boundary values plus one segment's activations, whatever ORT's scheduler does:
 * a session cannot keep alive what it never sees.
 *
 * Every weight becomes a run-time input named like the weight, so the forward and the VJP session of a segment
 * read one copy of it (the driver's) rather than each baking its own.
 */

export interface Segment {
  name: string;
  /** Forward graph: inputs are boundary values (`v<id>`), graph inputs and weights (by name); outputs `v<id>` or the loss. */
  forward: Graph;
  /** VJP graph: the forward's inputs it needs plus `cotangent/<output>`; outputs `grad/<input>`. Undefined when no gradient flows through. */
  vjp?: Graph;
  /** Input names of `forward` that carry values produced by earlier segments, with their value ids. */
  boundaryInputs: Array<{ name: string; value: number }>;
  /** Outputs of `forward` (boundary values for later segments, or the loss). */
  outputs: Array<{ name: string; value: number }>;
  /** Outputs whose cotangent the VJP takes (they lie on a gradient path). */
  cotangents: string[];
  /** Inputs (boundary values or differentiated graph inputs) the VJP returns `grad/<name>` for. */
  gradInputs: string[];
}

export interface SegmentOptions {
  loss: string;
  /** Graph inputs (or weights) to differentiate with respect to. */
  wrt: string[];
  /** The block a node belongs to; nodes without one join the next node that has one (the last block at the end). */
  blockOf: (n: Node) => string | undefined;
}

export const boundaryName = (id: number) => `v${id}`;

/**
 * Partitions the nodes the loss needs into runs of consecutive nodes of one block, in graph (topological)
 * order. A node without a block stays with the run that produced all its inputs (the add after a conv and its
 * LoRA branch), else it joins the next node that has a block (a concat of a skip and the block's input).
 */
export function partition(nodes: readonly Node[], blockOf: (n: Node) => string | undefined): Array<{ name: string; nodes: Node[] }> {
  const parts: Array<{ name: string; nodes: Node[] }> = [];
  let pending: Node[] = [];
  const producedBy = new Map<number, number>();
  const place = (n: Node, k: number) => {
    parts[k]!.nodes.push(n);
    for (const o of n.outputs) producedBy.set(o, k);
  };
  const known = new Set(nodes.flatMap((n) => n.outputs));
  for (const n of nodes) {
    const b = blockOf(n);
    const last = parts.length - 1;
    if (b === undefined) {
      const made = n.inputs.filter((i) => known.has(i));
      if (!pending.length && last >= 0 && made.length && made.every((i) => producedBy.get(i) === last)) place(n, last);
      else pending.push(n);
      continue;
    }
    if (last < 0 || parts[last]!.name !== b) parts.push({ name: b, nodes: [] });
    for (const p of pending) place(p, parts.length - 1);
    place(n, parts.length - 1);
    pending = [];
  }
  if (pending.length) {
    if (!parts.length) parts.push({ name: 'all', nodes: [] });
    for (const p of pending) place(p, parts.length - 1);
  }
  return parts;
}

export function splitForTraining(graph: Graph, opts: SegmentOptions): Segment[] {
  const plan = planGradient(graph, opts);
  const parts = partition(plan.forward, opts.blockOf);
  const inputName = new Map(graph.inputs.map((i) => [i.value, i.name]));
  const weightByValue = new Map(graph.weights.map((w) => [w.value, w]));
  const constByValue = new Map(graph.consts.map((c) => [c.value, c]));
  const wrtNames = new Set(plan.wrt.keys());
  const partOf = new Map<number, number>();
  parts.forEach((p, k) => p.nodes.forEach((n) => partOf.set(n.outputs[0]!, k)));
  // Last part that reads each value: a value leaves its part when a later part (or the loss) reads it.
  const readLater = new Set<number>([plan.loss]);
  parts.forEach((p, k) => {
    for (const n of p.nodes) for (const i of n.inputs) if (partOf.has(i) && partOf.get(i)! < k) readLater.add(i);
  });

  return parts.map((p, k) => {
    const own = new Set(p.nodes.map((n) => n.outputs[0]!));
    const inputs: Array<{ name: string; value: number }> = [];
    const boundaryInputs: Array<{ name: string; value: number }> = [];
    const consts: Graph['consts'] = [];
    const seen = new Set<number>();
    for (const n of p.nodes) {
      for (const i of n.inputs) {
        if (own.has(i) || seen.has(i)) continue;
        seen.add(i);
        const c = constByValue.get(i);
        if (c) consts.push(c);
        else if (inputName.has(i)) inputs.push({ name: inputName.get(i)!, value: i });
        else if (weightByValue.has(i)) inputs.push({ name: weightByValue.get(i)!.name, value: i });
        else {
          const b = { name: boundaryName(i), value: i };
          inputs.push(b);
          boundaryInputs.push(b);
        }
      }
    }
    const outputs = p.nodes
      .map((n) => n.outputs[0]!)
      .filter((v) => readLater.has(v) && (v === plan.loss || partOf.get(v) === k))
      .map((v) => ({ name: v === plan.loss ? opts.loss : boundaryName(v), value: v }));
    const forward: Graph = { values: graph.values, nodes: p.nodes, inputs, outputs, weights: [], consts };
    const cotangents = outputs.filter((o) => plan.needsGrad.has(o.value)).map((o) => o.name);
    const gradInputs = inputs.filter((i) => plan.needsGrad.has(i.value) && (boundaryInputs.includes(i) || wrtNames.has(i.name))).map((i) => i.name);
    const seg: Segment = { name: p.name, forward, boundaryInputs, outputs, cotangents, gradInputs };
    if (cotangents.length && gradInputs.length) seg.vjp = buildVjpGraph(forward, { outputs: cotangents, wrt: gradInputs });
    return seg;
  });
}
