/**
 * The tensor-graph IR: plain data (op name, input ids, attributes) so that compilation to ONNX, the float64
 * reference interpreter and reverse-mode autodiff can all walk the same structure. Nothing ONNX-specific
 * lives here.
 */

export type ElemType = 'float32' | 'int64' | 'int32' | 'bool';

/** A dimension: a fixed size or a symbolic expression such as "H" or "ceil(H/2)". */
export type Dim = number | string;
export type Shape = Dim[];

export type AttrValue = number | string | boolean | number[] | string[];
export type Attrs = Record<string, AttrValue>;

/** Every op of the IR with the attributes it takes. Shapes are NCHW for images, [B, S, C] for sequences. */
export const OPS = {
  // elementwise binary with numpy broadcasting
  add: [],
  sub: [],
  mul: [],
  div: [],
  pow: [],
  max: [],
  // elementwise unary
  neg: [],
  exp: [],
  log: [],
  sqrt: [],
  sin: [],
  cos: [],
  tanh: [],
  relu: [],
  sigmoid: [],
  silu: [],
  gelu: ['approximate'], // 'none' (erf) | 'tanh'
  quick_gelu: [],
  erf: [],
  acos: [], // inference-only (bislerp in UNet patches); no gradient rule
  // comparison: a > b with broadcasting -> bool (masks for relu/max gradients)
  greater: [],
  // select: where(cond bool, a, b) with broadcasting (inference-only)
  where: [],
  // linear algebra
  matmul: [],
  linear: [], // x[..., in] · W[out, in]^T (+ b[out]) — weights in PyTorch layout
  conv2d: ['stride', 'padding', 'dilation', 'groups'], // x, W[out, in/groups, kh, kw], b?
  // normalisation
  group_norm: ['groups', 'eps'], // x[N, C, ...], weight[C], bias[C]
  layer_norm: ['eps'], // over the last dim: x, weight, bias
  softmax: ['axis'],
  // attention: q[B, S, C], k[B, L, C], v[B, L, C] -> [B, S, C]; heads split C; scale = (C/heads)^-0.5
  attention: ['heads', 'causal'],
  // resampling
  upsample_nearest: ['scale'], // x[N, C, H, W] -> [N, C, H*scale, W*scale]
  upsample_nearest_like: [], // x, ref -> x resized (nearest) to ref's H, W
  // shape ops
  concat: ['axis'],
  slice: ['axis', 'start', 'end'], // end may be Infinity-like: use a large number
  reshape: ['shape'], // 0 copies the input dim, -1 infers (ONNX semantics)
  reshape_like: [], // x, ref -> x reshaped to ref's (run-time) shape; same element count
  reshape_to: [], // x, shape (int64 [rank], a run-time input) -> x reshaped (ONNX semantics); inference-only
  transpose: ['perm'],
  reduce_mean: ['axes', 'keepdims'],
  reduce_sum: ['axes', 'keepdims'],
  reduce_max: ['axes', 'keepdims'], // inference-only
  cast: ['to'],
  gather: ['axis'], // data, indices (int) -> embedding lookup along axis
  // Gradient helpers emitted by autodiff (runtime/graph/autodiff). Inputs named `ref` are read for their
  // run-time shape only, which keeps backward graphs valid for every batch and image size.
  conv2d_grad_input: ['stride', 'padding', 'dilation', 'groups'], // dy, W, ref -> [N, C, ref.H, ref.W] (transposed conv)
  conv2d_grad_weight: ['stride', 'padding', 'dilation', 'groups', 'kernel'], // x, dy -> [O, C/groups, kh, kw]
  attention_probs: ['heads', 'causal'], // q[B, S, C], k[B, L, C] -> softmax scores [B, heads, S, L]
  upsample_nearest_grad: [], // dy, ref -> [N, C, ref.H, ref.W]: dy summed over each source pixel's copies
  concat_grad: ['axis'], // dy, p0..pi -> the slice of dy that concat took from pi (offsets from run-time sizes)
  slice_grad: ['axis', 'start', 'end'], // dy, ref -> zeros shaped like ref with dy placed at [start, end)
  reduce_grad: ['axes', 'keepdims', 'mean'], // dy, ref -> dy broadcast back over the reduced axes (÷ count if mean)
} as const satisfies Record<string, readonly string[]>;

export type OpName = keyof typeof OPS;

export interface ValueInfo {
  id: number;
  type: ElemType;
  shape: Shape;
}

export interface Node {
  op: OpName;
  inputs: number[];
  outputs: number[];
  attrs: Attrs;
  /** Where in the model the node comes from, e.g. "input_blocks.1.0"; used for names and recomputation blocks. */
  scope?: string;
}

/** Lazily loaded float32 data for a weight. `key` must identify the content (used in cache hashes). */
export interface WeightSource {
  key: string;
  load(): Float32Array;
}

export interface WeightDecl {
  value: number;
  name: string;
  source: WeightSource;
  /**
   * Overridable weights are fed at run time instead of baked into the compiled model, so adapters
   * (ResAdapter, LoRA) can change them without rebuilding the session.
   */
  overridable: boolean;
}

export interface ConstDecl {
  value: number;
  data: Float32Array | Int32Array | BigInt64Array | Uint8Array;
}

export interface Graph {
  values: ValueInfo[];
  nodes: Node[];
  inputs: Array<{ name: string; value: number }>;
  outputs: Array<{ name: string; value: number }>;
  weights: WeightDecl[];
  consts: ConstDecl[];
}

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number') throw new Error(`numel of symbolic shape [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}

export function shapeToString(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}
