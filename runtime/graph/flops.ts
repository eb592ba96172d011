import type { Graph, Node } from './ir.js';

/**
 * Concrete shape propagation and FLOP counting over an IR graph for given input shapes. FLOPs count the
 * multiply-adds of conv, matmul, linear and attention as 2 each (the usual convention); elementwise work
 * is reported separately because it is memory-bound, not compute-bound.
 */
export interface FlopCount {
  /** 2 × multiply-adds of conv/matmul/linear/attention. */
  matmulFlops: number;
  /** One per output element of every other op. */
  elementwiseOps: number;
  byOp: Record<string, number>;
}

function broadcast(a: number[], b: number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    out.push(x === 1 ? y : x);
  }
  return out;
}

function outShape(n: Node, ins: number[][]): number[] {
  const [x, y] = ins as [number[], number[]];
  const a = n.attrs;
  switch (n.op) {
    case 'add': case 'sub': case 'mul': case 'div': case 'pow': case 'max':
      return broadcast(x, y);
    case 'matmul':
      return [...broadcast(x.slice(0, -2), y.slice(0, -2)), x[x.length - 2]!, y[y.length - 1]!];
    case 'linear':
      return [...x.slice(0, -1), y[0]!];
    case 'conv2d': {
      const [k, s, p, d] = [y[2]!, a.stride as number, a.padding as number, a.dilation as number];
      const o = (v: number, kk: number) => Math.floor((v + 2 * p - d * (kk - 1) - 1) / s) + 1;
      return [x[0]!, y[0]!, o(x[2]!, k), o(x[3]!, y[3]!)];
    }
    case 'attention':
      return [x[0]!, x[1]!, ins[2]![2]!];
    case 'upsample_nearest':
      return [x[0]!, x[1]!, x[2]! * (a.scale as number), x[3]! * (a.scale as number)];
    case 'upsample_nearest_like':
      return [x[0]!, x[1]!, y[2]!, y[3]!];
    case 'concat': {
      const out = [...x];
      out[a.axis as number] = ins.reduce((s, t) => s + t[a.axis as number]!, 0);
      return out;
    }
    case 'slice': {
      const out = [...x];
      const ax = a.axis as number;
      const clamp = (i: number) => Math.min(Math.max(i < 0 ? i + x[ax]! : i, 0), x[ax]!);
      out[ax] = Math.max(0, clamp(a.end as number) - clamp(a.start as number));
      return out;
    }
    case 'reshape': {
      const t = (a.shape as number[]).map((v, i) => (v === 0 ? x[i]! : v));
      const total = x.reduce((p, v) => p * v, 1);
      const known = t.filter((v) => v !== -1).reduce((p, v) => p * v, 1);
      return t.map((v) => (v === -1 ? total / known : v));
    }
    case 'reshape_like':
      return [...y];
    case 'transpose':
      return (a.perm as number[]).map((p) => x[p]!);
    case 'reduce_mean': case 'reduce_sum': {
      const axes = a.axes as number[];
      return a.keepdims ? x.map((v, i) => (axes.includes(i) ? 1 : v)) : x.filter((_, i) => !axes.includes(i));
    }
    case 'gather':
      return [...x.slice(0, a.axis as number), ...y, ...x.slice((a.axis as number) + 1)];
    default:
      return [...x];
  }
}

const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** Propagates concrete shapes from `inputs` (by graph input name) and counts FLOPs. */
export function countFlops(graph: Graph, inputs: Record<string, number[]>): FlopCount {
  const shapes = new Map<number, number[]>();
  for (const i of graph.inputs) {
    const s = inputs[i.name];
    if (!s) throw new Error(`countFlops: no shape for input "${i.name}"`);
    shapes.set(i.value, s);
  }
  for (const w of graph.weights) shapes.set(w.value, graph.values[w.value]!.shape as number[]);
  for (const c of graph.consts) shapes.set(c.value, graph.values[c.value]!.shape as number[]);
  const res: FlopCount = { matmulFlops: 0, elementwiseOps: 0, byOp: {} };
  for (const n of graph.nodes) {
    const ins = n.inputs.map((id) => shapes.get(id) ?? (graph.values[id]!.shape as number[]));
    const out = outShape(n, ins);
    shapes.set(n.outputs[0]!, out);
    let f = 0;
    if (n.op === 'conv2d') f = 2 * prod(out) * prod(ins[1]!.slice(1));
    else if (n.op === 'matmul') f = 2 * prod(out) * ins[0]![ins[0]!.length - 1]!;
    else if (n.op === 'linear') f = 2 * prod(out) * ins[0]![ins[0]!.length - 1]!;
    else if (n.op === 'attention') f = 4 * ins[0]![0]! * ins[0]![1]! * ins[1]![1]! * ins[0]![2]!;
    if (f) {
      res.matmulFlops += f;
      res.byOp[n.op] = (res.byOp[n.op] ?? 0) + f;
    } else res.elementwiseOps += prod(out);
  }
  return res;
}
