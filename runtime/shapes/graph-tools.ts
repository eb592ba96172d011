/**
 * IR transforms for training a whole model: turning weights into graph inputs (so every tensor of a model
 * becomes a trainable parameter) and splicing one graph's output into another's input (the VAE's encoder
 * into its decoder).
 */
import type { Graph } from '../graph/ir.js';

export interface WeightParam {
  /** The weight's full checkpoint key, now a graph input name. */
  name: string;
  shape: number[];
  initial: () => Float32Array;
}

/** Moves every weight `pick` accepts from initializer to graph input; returns the new graph and the parameters. */
export function weightsAsInputs(graph: Graph, pick: (name: string) => boolean = () => true): { graph: Graph; params: WeightParam[] } {
  const params: WeightParam[] = [];
  const kept = [];
  const inputs = [...graph.inputs];
  for (const w of graph.weights) {
    if (!pick(w.name)) {
      kept.push(w);
      continue;
    }
    const shape = graph.values[w.value]!.shape;
    if (!shape.every((d) => typeof d === 'number')) throw new Error(`weight ${w.name} has a symbolic shape`);
    inputs.push({ name: w.name, value: w.value });
    params.push({ name: w.name, shape: shape as number[], initial: () => w.source.load() });
  }
  return { graph: { ...graph, inputs, weights: kept }, params };
}

/**
 * One graph holding `first` and then `second`, with `second`'s input `input` replaced by `first`'s value
 * `value`. The symbolic dims of `second` are renamed (suffix `tag`) so they cannot alias `first`'s.
 */
export function spliceGraphs(first: Graph, value: number, second: Graph, input: string, tag: string): Graph {
  const target = second.inputs.find((i) => i.name === input);
  if (!target) throw new Error(`spliceGraphs: the second graph has no input "${input}"`);
  const offset = first.values.length;
  const map = (id: number) => (id === target.value ? value : id + offset);
  const rename = (d: number | string) => (typeof d === 'string' ? d.replace(/\b([A-Za-z_][A-Za-z_0-9]*)\b/g, (m) => (/^(ceil|floor|min|max)$/.test(m) ? m : `${m}${tag}`)) : d);
  const values = [...first.values, ...second.values.map((v) => ({ id: v.id + offset, type: v.type, shape: v.shape.map(rename) }))];
  const firstWeights = new Set(first.weights.map((w) => w.name));
  const clash = second.weights.find((w) => firstWeights.has(w.name));
  if (clash) throw new Error(`spliceGraphs: both graphs bind weight ${clash.name}`);
  return {
    values,
    nodes: [...first.nodes, ...second.nodes.map((n) => ({ ...n, inputs: n.inputs.map(map), outputs: n.outputs.map(map) }))],
    inputs: [...first.inputs, ...second.inputs.filter((i) => i !== target).map((i) => ({ name: i.name, value: map(i.value) }))],
    outputs: [...first.outputs, ...second.outputs.map((o) => ({ name: o.name, value: map(o.value) }))],
    weights: [...first.weights, ...second.weights.map((w) => ({ ...w, value: map(w.value) }))],
    consts: [...first.consts, ...second.consts.map((c) => ({ ...c, value: map(c.value) }))],
  };
}
