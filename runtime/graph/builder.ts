import type { Attrs, ElemType, Graph, Node, OpName, Shape, WeightSource } from './ir.js';
import { addDims, broadcastShapes, convOutDim, mulDim, reshapeShape, sliceDim } from './shape.js';

/** A handle to a value in the graph under construction. */
export class T {
  constructor(
    readonly g: GraphBuilder,
    readonly id: number,
    readonly type: ElemType,
    readonly shape: Shape,
  ) {}
  get rank(): number {
    return this.shape.length;
  }
}

type Operand = T | number;

/**
 * Builds IR graphs with shape inference. Model code (UNet, CLIP, VAE...) only talks to this class; how
 * each op becomes ONNX is the compiler's business.
 */
export class GraphBuilder {
  readonly graph: Graph = { values: [], nodes: [], inputs: [], outputs: [], weights: [], consts: [] };
  private scopeStack: string[] = [];
  private weightsByName = new Map<string, T>();
  private scalarCache = new Map<number, T>();

  private newValue(type: ElemType, shape: Shape): T {
    const id = this.graph.values.length;
    this.graph.values.push({ id, type, shape: [...shape] });
    return new T(this, id, type, shape);
  }

  /** Runs `fn` with a name scope, so nodes record where in the model they come from. */
  scope<R>(name: string, fn: () => R): R {
    this.scopeStack.push(name);
    try {
      return fn();
    } finally {
      this.scopeStack.pop();
    }
  }

  currentScope(): string {
    return this.scopeStack.join('.');
  }

  input(name: string, type: ElemType, shape: Shape): T {
    const t = this.newValue(type, shape);
    this.graph.inputs.push({ name, value: t.id });
    return t;
  }

  output(name: string, t: T): void {
    this.graph.outputs.push({ name, value: t.id });
  }

  /** A named float32 weight, loaded lazily from `source` at compile time. The same name yields the same value. */
  weight(name: string, shape: Shape, source: WeightSource, opts: { overridable?: boolean } = {}): T {
    const existing = this.weightsByName.get(name);
    if (existing) return existing;
    const t = this.newValue('float32', shape);
    this.graph.weights.push({ value: t.id, name, source, overridable: opts.overridable ?? false });
    this.weightsByName.set(name, t);
    return t;
  }

  constant(data: Float32Array | Int32Array | BigInt64Array | Uint8Array, shape: number[], type?: ElemType): T {
    const elem: ElemType =
      type ?? (data instanceof Float32Array ? 'float32' : data instanceof Int32Array ? 'int32' : data instanceof BigInt64Array ? 'int64' : 'bool');
    const t = this.newValue(elem, shape);
    this.graph.consts.push({ value: t.id, data });
    return t;
  }

  scalar(v: number): T {
    let t = this.scalarCache.get(v);
    if (!t) {
      t = this.constant(new Float32Array([v]), []);
      this.scalarCache.set(v, t);
    }
    return t;
  }

  private node(op: OpName, inputs: T[], attrs: Attrs, outType: ElemType, outShape: Shape): T {
    const out = this.newValue(outType, outShape);
    const n: Node = { op, inputs: inputs.map((i) => i.id), outputs: [out.id], attrs };
    const scope = this.currentScope();
    if (scope) n.scope = scope;
    this.graph.nodes.push(n);
    return out;
  }

  private operand(x: Operand): T {
    return typeof x === 'number' ? this.scalar(x) : x;
  }

  private binary(op: OpName, a: Operand, b: Operand): T {
    const ta = this.operand(a);
    const tb = this.operand(b);
    return this.node(op, [ta, tb], {}, ta.type, broadcastShapes(ta.shape, tb.shape, op));
  }

  add(a: Operand, b: Operand): T { return this.binary('add', a, b); }
  sub(a: Operand, b: Operand): T { return this.binary('sub', a, b); }
  mul(a: Operand, b: Operand): T { return this.binary('mul', a, b); }
  div(a: Operand, b: Operand): T { return this.binary('div', a, b); }
  pow(a: Operand, b: Operand): T { return this.binary('pow', a, b); }
  max(a: Operand, b: Operand): T { return this.binary('max', a, b); }

  private unary(op: OpName, x: T, attrs: Attrs = {}): T {
    return this.node(op, [x], attrs, x.type, x.shape);
  }

  neg(x: T): T { return this.unary('neg', x); }
  exp(x: T): T { return this.unary('exp', x); }
  log(x: T): T { return this.unary('log', x); }
  sqrt(x: T): T { return this.unary('sqrt', x); }
  sin(x: T): T { return this.unary('sin', x); }
  cos(x: T): T { return this.unary('cos', x); }
  tanh(x: T): T { return this.unary('tanh', x); }
  relu(x: T): T { return this.unary('relu', x); }
  sigmoid(x: T): T { return this.unary('sigmoid', x); }
  silu(x: T): T { return this.unary('silu', x); }
  gelu(x: T, approximate: 'none' | 'tanh' = 'none'): T { return this.unary('gelu', x, { approximate }); }
  quickGelu(x: T): T { return this.unary('quick_gelu', x); }
  erf(x: T): T { return this.unary('erf', x); }
  acos(x: T): T { return this.unary('acos', x); }

  /** Elementwise select: `cond ? a : b` (broadcasting). Unlike a masked blend, NaN in the unselected branch stays out. */
  select(cond: T, a: Operand, b: Operand): T {
    const ta = this.operand(a);
    const tb = this.operand(b);
    return this.node('where', [cond, ta, tb], {}, ta.type, broadcastShapes(cond.shape, broadcastShapes(ta.shape, tb.shape, 'where'), 'where'));
  }

  /** Reshape to a shape given at run time (an int64 [rank] tensor); `shape` is the IR's view of the result. */
  reshapeTo(x: T, target: T, shape: Shape): T {
    return this.node('reshape_to', [x, target], {}, x.type, shape);
  }

  /** a > b elementwise (broadcasting), as a bool tensor. */
  greater(a: Operand, b: Operand): T {
    const ta = this.operand(a);
    const tb = this.operand(b);
    return this.node('greater', [ta, tb], {}, 'bool', broadcastShapes(ta.shape, tb.shape, 'greater'));
  }

  softmax(x: T, axis = -1): T {
    return this.unary('softmax', x, { axis: axis < 0 ? x.rank + axis : axis });
  }

  matmul(a: T, b: T): T {
    if (a.rank < 2 || b.rank < 2) throw new Error('matmul needs rank >= 2 operands');
    const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2), 'matmul');
    return this.node('matmul', [a, b], {}, 'float32', [...batch, a.shape[a.rank - 2]!, b.shape[b.rank - 1]!]);
  }

  /** x[..., in] @ W[out, in]^T + b: weights stay in PyTorch layout in the IR. */
  linear(x: T, w: T, b?: T): T {
    const inDim = x.shape[x.rank - 1];
    if (typeof inDim === 'number' && w.shape[1] !== inDim) {
      throw new Error(`linear: input features ${inDim} do not match weight [${w.shape.join(', ')}]${this.where()}`);
    }
    return this.node('linear', b ? [x, w, b] : [x, w], {}, 'float32', [...x.shape.slice(0, -1), w.shape[0]!]);
  }

  conv2d(x: T, w: T, b: T | undefined, o: { stride?: number; padding?: number; dilation?: number; groups?: number } = {}): T {
    const stride = o.stride ?? 1;
    const padding = o.padding ?? 0;
    const dilation = o.dilation ?? 1;
    const groups = o.groups ?? 1;
    const [outC, inPerGroup, kh, kw] = w.shape as number[];
    if (typeof x.shape[1] === 'number' && x.shape[1] !== inPerGroup! * groups) {
      throw new Error(`conv2d: input has ${x.shape[1]} channels, weight [${w.shape.join(', ')}] expects ${inPerGroup! * groups}${this.where()}`);
    }
    const shape: Shape = [
      x.shape[0]!,
      outC!,
      convOutDim(x.shape[2]!, kh!, stride, padding, dilation),
      convOutDim(x.shape[3]!, kw!, stride, padding, dilation),
    ];
    return this.node('conv2d', b ? [x, w, b] : [x, w], { stride, padding, dilation, groups }, 'float32', shape);
  }

  groupNorm(x: T, groups: number, weight: T, bias: T, eps = 1e-5): T {
    return this.node('group_norm', [x, weight, bias], { groups, eps }, 'float32', x.shape);
  }

  layerNorm(x: T, weight: T, bias: T, eps = 1e-5): T {
    return this.node('layer_norm', [x, weight, bias], { eps }, 'float32', x.shape);
  }

  attention(q: T, k: T, v: T, heads: number, opts: { causal?: boolean } = {}): T {
    return this.node('attention', [q, k, v], { heads, causal: opts.causal ?? false }, 'float32', [q.shape[0]!, q.shape[1]!, v.shape[2]!]);
  }

  upsampleNearest(x: T, scale = 2): T {
    return this.node('upsample_nearest', [x], { scale }, x.type, [x.shape[0]!, x.shape[1]!, mulDim(x.shape[2]!, scale), mulDim(x.shape[3]!, scale)]);
  }

  /** Nearest upsample to the spatial size of `ref` (odd sizes: the skip tensor decides). */
  upsampleNearestLike(x: T, ref: T): T {
    return this.node('upsample_nearest_like', [x, ref], {}, x.type, [x.shape[0]!, x.shape[1]!, ref.shape[2]!, ref.shape[3]!]);
  }

  concat(xs: T[], axis: number): T {
    const first = xs[0]!;
    const ax = axis < 0 ? first.rank + axis : axis;
    const shape = [...first.shape];
    shape[ax] = addDims(xs.map((x) => x.shape[ax]!));
    return this.node('concat', xs, { axis: ax }, first.type, shape);
  }

  slice(x: T, axis: number, start: number, end: number): T {
    const ax = axis < 0 ? x.rank + axis : axis;
    const shape = [...x.shape];
    shape[ax] = sliceDim(x.shape[ax]!, start, end);
    return this.node('slice', [x], { axis: ax, start, end }, x.type, shape);
  }

  /** Splits `x` along `axis` into `parts` equal chunks. */
  chunk(x: T, parts: number, axis: number): T[] {
    const ax = axis < 0 ? x.rank + axis : axis;
    const d = x.shape[ax];
    if (typeof d !== 'number') throw new Error('chunk needs a fixed dimension');
    const size = d / parts;
    return Array.from({ length: parts }, (_, i) => this.slice(x, ax, i * size, (i + 1) * size));
  }

  reshape(x: T, shape: number[]): T {
    return this.node('reshape', [x], { shape }, x.type, reshapeShape(x.shape, shape));
  }

  /** Reshapes x to the run-time shape of `ref` (e.g. tokens back to [B, C, H, W]). */
  reshapeLike(x: T, ref: T): T {
    return this.node('reshape_like', [x, ref], {}, x.type, ref.shape);
  }

  transpose(x: T, perm: number[]): T {
    return this.node('transpose', [x], { perm }, x.type, perm.map((p) => x.shape[p]!));
  }

  private reduce(op: 'reduce_mean' | 'reduce_sum' | 'reduce_max', x: T, axes: number[], keepdims: boolean): T {
    const ax = axes.map((a) => (a < 0 ? x.rank + a : a));
    const shape = keepdims ? x.shape.map((d, i) => (ax.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !ax.includes(i));
    return this.node(op, [x], { axes: ax, keepdims }, x.type, shape);
  }

  reduceMean(x: T, axes: number[], keepdims = true): T { return this.reduce('reduce_mean', x, axes, keepdims); }
  reduceSum(x: T, axes: number[], keepdims = true): T { return this.reduce('reduce_sum', x, axes, keepdims); }
  reduceMax(x: T, axes: number[], keepdims = true): T { return this.reduce('reduce_max', x, axes, keepdims); }

  cast(x: T, to: ElemType): T {
    return this.node('cast', [x], { to }, to, x.shape);
  }

  /** Embedding lookup: data[V, D] indexed by int ids[...] along axis 0 -> [..., D]. */
  gather(data: T, indices: T, axis = 0): T {
    const shape = [...data.shape.slice(0, axis), ...indices.shape, ...data.shape.slice(axis + 1)];
    return this.node('gather', [data, indices], { axis }, data.type, shape);
  }

  // Gradient helpers (emitted by autodiff; see OPS for their contracts). `ref` inputs only lend their shape.

  conv2dGradInput(dy: T, w: T, ref: T, o: { stride: number; padding: number; dilation: number; groups: number }): T {
    const shape: Shape = [ref.shape[0]!, (w.shape[1] as number) * o.groups, ref.shape[2]!, ref.shape[3]!];
    return this.node('conv2d_grad_input', [dy, w, ref], { ...o }, 'float32', shape);
  }

  conv2dGradWeight(x: T, dy: T, o: { stride: number; padding: number; dilation: number; groups: number; kernel: number[] }): T {
    const shape: Shape = [dy.shape[1]!, (x.shape[1] as number) / o.groups, o.kernel[0]!, o.kernel[1]!];
    return this.node('conv2d_grad_weight', [x, dy], { ...o }, 'float32', shape);
  }

  attentionProbs(q: T, k: T, heads: number, causal: boolean): T {
    return this.node('attention_probs', [q, k], { heads, causal }, 'float32', [q.shape[0]!, heads, q.shape[1]!, k.shape[1]!]);
  }

  upsampleNearestGrad(dy: T, ref: T): T {
    return this.node('upsample_nearest_grad', [dy, ref], {}, dy.type, [dy.shape[0]!, dy.shape[1]!, ref.shape[2]!, ref.shape[3]!]);
  }

  /** The slice of `dy` that a concat along `axis` took from the last of `parts` (earlier parts give the offset). */
  concatGrad(dy: T, parts: T[], axis: number): T {
    const shape = [...dy.shape];
    shape[axis] = parts[parts.length - 1]!.shape[axis]!;
    return this.node('concat_grad', [dy, ...parts], { axis }, dy.type, shape);
  }

  sliceGrad(dy: T, ref: T, axis: number, start: number, end: number): T {
    return this.node('slice_grad', [dy, ref], { axis, start, end }, dy.type, ref.shape);
  }

  reduceGrad(dy: T, ref: T, axes: number[], keepdims: boolean, mean: boolean): T {
    return this.node('reduce_grad', [dy, ref], { axes, keepdims, mean }, dy.type, ref.shape);
  }

  private where(): string {
    const s = this.currentScope();
    return s ? ` (at ${s})` : '';
  }
}
