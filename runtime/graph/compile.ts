import type { Graph, Node, ElemType, Shape } from './ir.js';
import type { OnnxAttr, OnnxNode, OnnxTensor, OnnxTypeCode, OnnxValueInfo, OnnxDim, OnnxModel } from '../onnx/model.js';
import { OnnxType } from '../onnx/model.js';
import { lowerAutodiffOp } from './lower-grad.js';
import { int8LayoutFor, lowerInt8Conv, lowerInt8Linear, scaleName, type Precision } from './lower-int8.js';
import { NO_SUBPIXEL, finishSubpixelNhwc, lowerSubpixelConv, lowerSubpixelDispatch, planSubpixel, plainName, tiledBias, type Emit } from './subpixel.js';

/**
 * How a weight's stored (PyTorch-layout) data becomes the tensor the ONNX graph consumes. The same transform
 * is applied to initializers at compile time and to overridable weights at feed time.
 */
export type WeightLayout =
  | { kind: 'as_is'; dims: number[] }
  | { kind: 'transpose2d'; dims: number[] } // [out, in] -> [in, out] for MatMul
  | { kind: 'channel_broadcast'; dims: number[] } // [C] -> [C, 1, 1] for NCHW affine
  | { kind: 'int8_linear'; dims: number[] } // [out, in] -> int8 codes [in, out] + per-out scales
  | { kind: 'int8_conv'; dims: number[]; taps: number; subpixel?: true; plain?: number[] } // [O, C, kh, kw] -> int8 codes [kh*kw*C, O] + per-O scales (sub-pixel: of [4O, C, 2, 2], plus the 3×3 codes if `plain`)
  | { kind: 'subpixel'; dims: number[] }; // [O, C, 3, 3] -> [4O, C, 2, 2] (subpixel.ts); int8: int8_conv of that

export interface PlannedWeight {
  onnxName: string;
  irName: string;
  value: number;
  layout: WeightLayout;
  overridable: boolean;
}

export interface LoweredGraph {
  model: OnnxModel;
  weights: PlannedWeight[];
  /** Graph input names (user inputs first, then overridable weights). */
  inputNames: string[];
  outputNames: string[];
}

export interface LowerOptions {
  opset?: number;
  /** Use com.microsoft.MultiHeadAttention (faster on CPU, no full score tensor) instead of MatMul/Softmax. */
  fusedAttention?: boolean;
  /** Standard ONNX ops only (no com.microsoft fusions), for execution providers other than the CPU. */
  portable?: boolean;
  /** `int8`: baked linear and conv weights become per-channel int8 codes with dynamic activation quantisation. */
  precision?: Precision;
  /** Lower nearest-2×-upsample → 3×3 conv pairs as one sub-pixel 2×2 conv (subpixel.ts); default true. */
  subpixel?: boolean;
}

const ELEM: Record<ElemType, OnnxTypeCode> = { float32: OnnxType.FLOAT, int64: OnnxType.INT64, int32: OnnxType.INT32, bool: OnnxType.BOOL };

const SIMPLE: Partial<Record<Node['op'], string>> = {
  add: 'Add', sub: 'Sub', mul: 'Mul', div: 'Div', pow: 'Pow', max: 'Max', neg: 'Neg', exp: 'Exp', log: 'Log',
  sqrt: 'Sqrt', sin: 'Sin', cos: 'Cos', acos: 'Acos', where: 'Where', tanh: 'Tanh', relu: 'Relu', sigmoid: 'Sigmoid', matmul: 'MatMul',
};

function onnxDims(shape: Shape): OnnxDim[] {
  // Only plain symbols travel as dim_param; derived expressions are left unnamed so ORT infers them.
  return shape.map((d) => (typeof d === 'number' ? d : /^[A-Za-z_][A-Za-z0-9_]*$/.test(d) ? d : null));
}

function int64Tensor(name: string, values: number[]): OnnxTensor {
  return { name, dataType: OnnxType.INT64, dims: [values.length], raw: new Uint8Array(BigInt64Array.from(values.map((v) => BigInt(v))).buffer) };
}

/**
 * Lowers the IR to an ONNX model description. Weight initializers are left without data here: the caller
 * decides where each one lives (inline bytes or external file) once it has planned the layouts.
 */
export function lowerToOnnx(graph: Graph, opts: LowerOptions = {}): LoweredGraph {
  const opset = opts.opset ?? 21;
  const portable = opts.portable ?? false;
  const fused = !portable && (opts.fusedAttention ?? true);
  // The integer kernels we use are ORT CPU ones (com.microsoft); portable graphs stay fp32.
  const int8 = !portable && opts.precision === 'int8';
  const sub = opts.subpixel === false ? NO_SUBPIXEL : planSubpixel(graph, { dispatch: !portable });
  const nodes: OnnxNode[] = [];
  const initializers: OnnxTensor[] = [];
  const names = new Map<number, string>();
  const weightByValue = new Map(graph.weights.map((w) => [w.value, w]));
  const planned = new Map<number, PlannedWeight>();
  let tmp = 0;
  const fresh = (hint: string) => `${hint}_${tmp++}`;
  const constCache = new Map<string, string>();
  const i64 = (values: number[]): string => {
    const key = values.join(',');
    let n = constCache.get(key);
    if (!n) {
      n = fresh('c_i64');
      initializers.push(int64Tensor(n, values));
      constCache.set(key, n);
    }
    return n;
  };
  const emit = (opType: string, inputs: string[], outputs: string[], attributes?: Record<string, OnnxAttr>, domain?: string) => {
    const n: OnnxNode = { opType, inputs, outputs };
    if (attributes) n.attributes = attributes;
    if (domain) n.domain = domain;
    nodes.push(n);
  };

  for (const inp of graph.inputs) names.set(inp.value, inp.name);
  graph.consts.forEach((c) => {
    const name = fresh('const');
    names.set(c.value, name);
    const v = graph.values[c.value]!;
    const raw = new Uint8Array(c.data.buffer, c.data.byteOffset, c.data.byteLength);
    initializers.push({ name, dataType: ELEM[v.type], dims: v.shape as number[], raw: raw.slice() });
  });

  // Weights get a layout chosen by how their first consumer uses them.
  const useOf = new Map<number, { op: Node['op']; slot: number; x?: Shape }>();
  for (const n of graph.nodes) {
    n.inputs.forEach((id, slot) => {
      if (weightByValue.has(id) && !useOf.has(id)) useOf.set(id, { op: n.op, slot, x: graph.values[n.inputs[0]!]!.shape });
    });
  }
  const layoutFor = (value: number): WeightLayout => {
    const shape = graph.values[value]!.shape as number[];
    const use = useOf.get(value);
    const consumers = graph.nodes.filter((n) => n.inputs.includes(value));
    const w = weightByValue.get(value)!;
    if (sub.weights.has(value)) {
      const [o, c] = shape as [number, number];
      const q = int8 ? int8LayoutFor(graph, w.name, shape, consumers.map((node) => ({ node, slot: 1 }))) : undefined;
      if (!q) return { kind: 'subpixel', dims: [4 * o, c, 2, 2] };
      return { kind: 'int8_conv', dims: [4 * c, 4 * o], taps: 4, subpixel: true, ...(sub.dispatched.has(value) ? { plain: q.dims } : {}) };
    }
    if (int8) {
      const q = int8LayoutFor(graph, w.name, shape, consumers.map((node) => ({ node, slot: node.inputs.indexOf(value) })));
      if (q) return q;
    }
    // For group_norm also the same input rank: a [C, 1] affine baked for rank 3 would mis-broadcast at rank 4.
    const rank = (n: Node) => graph.values[n.inputs[0]!]!.shape.length;
    const allSame = consumers.every(
      (n) => n.op === use?.op && n.inputs.indexOf(value) === use.slot && (n.op !== 'group_norm' || rank(n) === use.x?.length),
    );
    if (use && allSame && use.op === 'linear' && use.slot === 1) return { kind: 'transpose2d', dims: [shape[1]!, shape[0]!] };
    if (use && allSame && use.op === 'group_norm' && use.slot > 0) {
      return { kind: 'channel_broadcast', dims: [shape[0]!, ...new Array(Math.max(0, (use.x?.length ?? 4) - 2)).fill(1)] };
    }
    return { kind: 'as_is', dims: shape };
  };
  for (const w of graph.weights) {
    const onnxName = w.name;
    names.set(w.value, onnxName);
    planned.set(w.value, { onnxName, irName: w.name, value: w.value, layout: layoutFor(w.value), overridable: w.overridable });
  }
  const rawWeight = (id: number) => planned.has(id) && planned.get(id)!.layout.kind !== 'as_is';

  for (const n of graph.nodes) {
    if (sub.upsamples.has(n)) {
      // Folded into its conv, which reads the upsample's input directly.
      names.set(n.outputs[0]!, names.get(n.inputs[0]!)!);
      continue;
    }
    const ins = n.inputs.map((id) => {
      const nm = names.get(id);
      if (nm === undefined) throw new Error(`IR value ${id} used by ${n.op} before it is defined`);
      return nm;
    });
    const out = fresh(n.op);
    names.set(n.outputs[0]!, out);
    const xShape = graph.values[n.inputs[0]!]!.shape;
    const simple = SIMPLE[n.op];
    if (simple) {
      emit(simple, ins, [out]);
      continue;
    }
    switch (n.op) {
      case 'silu':
      case 'quick_gelu': {
        const alpha = n.op === 'silu' ? 1.0 : 1.702;
        if (!portable) {
          emit('QuickGelu', ins, [out], { alpha: { f: alpha } }, 'com.microsoft');
          break;
        }
        // x * sigmoid(alpha x): HardSigmoid-free so every provider computes the exact function.
        let arg = ins[0]!;
        if (alpha !== 1) {
          const scale = fresh('qg_alpha');
          emit('Constant', [], [scale], { value: { t: { name: scale, dataType: OnnxType.FLOAT, dims: [], raw: new Uint8Array(new Float32Array([alpha]).buffer) } } });
          arg = fresh('qg_scaled');
          emit('Mul', [ins[0]!, scale], [arg]);
        }
        const gate = fresh('qg_gate');
        emit('Sigmoid', [arg], [gate]);
        emit('Mul', [ins[0]!, gate], [out]);
        break;
      }
      case 'gelu':
        if (portable) emit('Gelu', ins, [out], n.attrs.approximate === 'tanh' ? { approximate: { s: 'tanh' } } : undefined);
        else emit(n.attrs.approximate === 'tanh' ? 'FastGelu' : 'Gelu', ins, [out], undefined, 'com.microsoft');
        break;
      case 'softmax':
        emit('Softmax', ins, [out], { axis: { i: n.attrs.axis as number } });
        break;
      case 'linear': {
        if (planned.get(n.inputs[1]!)?.layout.kind === 'int8_linear') {
          lowerInt8Linear(ins, out, { emit, fresh, i64 });
          break;
        }
        let wt = ins[1]!;
        if (!rawWeight(n.inputs[1]!)) {
          wt = fresh('wt');
          emit('Transpose', [ins[1]!], [wt], { perm: { ints: [1, 0] } });
        }
        if (ins.length > 2) {
          const mm = fresh('mm');
          emit('MatMul', [ins[0]!, wt], [mm]);
          emit('Add', [mm, ins[2]!], [out]);
        } else emit('MatMul', [ins[0]!, wt], [out]);
        break;
      }
      case 'conv2d': {
        const p = n.attrs.padding as number;
        const s = n.attrs.stride as number;
        const d = n.attrs.dilation as number;
        const wShape = graph.values[n.inputs[1]!]!.shape as number[];
        const up = sub.convs.get(n);
        if (up) {
          const [o, c] = wShape as [number, number];
          const quant = planned.get(n.inputs[1]!)?.layout.kind === 'int8_conv';
          const fast = (em: Emit, to: string) => {
            if (!quant) return lowerSubpixelConv(ins, to, em);
            const qins = ins[2] ? [ins[0]!, ins[1]!, tiledBias(ins[2], em)] : ins;
            lowerInt8Conv(n, qins, to, [4 * o, c, 2, 2], em, (nhwc) => finishSubpixelNhwc(nhwc, to, em));
          };
          if (up.op === 'upsample_nearest') fast({ emit, fresh, i64 }, out);
          else {
            // Odd skip sizes: int8 runs today's int8 conv on the 3×3 codes kept beside the sub-pixel ones.
            const plainInt8 = quant ? (em: Emit, upX: string, to: string) => lowerInt8Conv(n, [upX, plainName(ins[1]!), ...ins.slice(2)], to, wShape, em) : undefined;
            lowerSubpixelDispatch(ins, names.get(up.inputs[1]!)!, out, { o, c }, fast, plainInt8, { emit, fresh, i64 });
          }
          break;
        }
        if (planned.get(n.inputs[1]!)?.layout.kind === 'int8_conv') {
          lowerInt8Conv(n, ins, out, wShape, { emit, fresh, i64 });
          break;
        }
        emit('Conv', ins, [out], {
          kernel_shape: { ints: [wShape[2]!, wShape[3]!] },
          pads: { ints: [p, p, p, p] },
          strides: { ints: [s, s] },
          dilations: { ints: [d, d] },
          group: { i: n.attrs.groups as number },
        });
        break;
      }
      case 'group_norm': {
        // InstanceNormalization over [N, G, rest] is much faster on ORT CPU than GroupNormalization's expansion.
        const groups = n.attrs.groups as number;
        const grouped = fresh('gn_in');
        emit('Reshape', [ins[0]!, i64([0, groups, -1])], [grouped]);
        const ones = fresh('gn_one');
        const zeros = fresh('gn_zero');
        initializers.push({ name: ones, dataType: OnnxType.FLOAT, dims: [groups], raw: new Uint8Array(new Float32Array(groups).fill(1).buffer) });
        initializers.push({ name: zeros, dataType: OnnxType.FLOAT, dims: [groups], raw: new Uint8Array(new Float32Array(groups).buffer) });
        const normed = fresh('gn_norm');
        emit('InstanceNormalization', [grouped, ones, zeros], [normed], { epsilon: { f: n.attrs.eps as number } });
        const shp = fresh('gn_shape');
        emit('Shape', [ins[0]!], [shp]);
        const back = fresh('gn_back');
        emit('Reshape', [normed, shp], [back]);
        const affine = (name: string, id: number): string => {
          if (rawWeight(id)) return name;
          const r = fresh('gn_aff');
          emit('Reshape', [name, i64([-1, ...new Array(xShape.length - 2).fill(1)])], [r]);
          return r;
        };
        const scaled = fresh('gn_scaled');
        emit('Mul', [back, affine(ins[1]!, n.inputs[1]!)], [scaled]);
        emit('Add', [scaled, affine(ins[2]!, n.inputs[2]!)], [out]);
        break;
      }
      case 'layer_norm':
        emit('LayerNormalization', ins, [out], { axis: { i: -1 }, epsilon: { f: n.attrs.eps as number } });
        break;
      case 'attention':
        lowerAttention(n, ins, out, graph, { fused, emit, fresh, i64 });
        break;
      case 'upsample_nearest': {
        const s = n.attrs.scale as number;
        const scales = fresh('scales');
        initializers.push({ name: scales, dataType: OnnxType.FLOAT, dims: [4], raw: new Uint8Array(new Float32Array([1, 1, s, s]).buffer) });
        emit('Resize', [ins[0]!, '', scales], [out], nearestAttrs());
        break;
      }
      case 'upsample_nearest_like': {
        const sx = fresh('shape_x');
        const sr = fresh('shape_ref');
        emit('Shape', [ins[0]!], [sx], { end: { i: 2 } });
        emit('Shape', [ins[1]!], [sr], { start: { i: 2 } });
        const sizes = fresh('sizes');
        emit('Concat', [sx, sr], [sizes], { axis: { i: 0 } });
        emit('Resize', [ins[0]!, '', '', sizes], [out], nearestAttrs());
        break;
      }
      case 'concat':
        emit('Concat', ins, [out], { axis: { i: n.attrs.axis as number } });
        break;
      case 'slice':
        // Slice clamps out-of-range bounds itself; clamping here only keeps ±Infinity representable as int64.
        emit('Slice', [ins[0]!, i64([clampI64(n.attrs.start as number)]), i64([clampI64(n.attrs.end as number)]), i64([n.attrs.axis as number])], [out]);
        break;
      case 'reshape':
        emit('Reshape', [ins[0]!, i64(n.attrs.shape as number[])], [out]);
        break;
      case 'reshape_like': {
        const shp = fresh('shape_ref');
        emit('Shape', [ins[1]!], [shp]);
        emit('Reshape', [ins[0]!, shp], [out]);
        break;
      }
      case 'transpose':
        emit('Transpose', ins, [out], { perm: { ints: n.attrs.perm as number[] } });
        break;
      case 'reshape_to':
        emit('Reshape', ins, [out]);
        break;
      case 'reduce_mean':
      case 'reduce_max':
      case 'reduce_sum': {
        const op = n.op === 'reduce_mean' ? 'ReduceMean' : n.op === 'reduce_max' ? 'ReduceMax' : 'ReduceSum';
        const keep = { keepdims: { i: n.attrs.keepdims ? 1 : 0 } };
        if (op !== 'ReduceSum' && opset < 18) emit(op, ins, [out], { ...keep, axes: { ints: n.attrs.axes as number[] } });
        else emit(op, [ins[0]!, i64(n.attrs.axes as number[])], [out], keep);
        break;
      }
      case 'cast':
        emit('Cast', ins, [out], { to: { i: ELEM[n.attrs.to as ElemType] } });
        break;
      case 'gather':
        emit('Gather', ins, [out], { axis: { i: n.attrs.axis as number } });
        break;
      default:
        if (!lowerAutodiffOp(n, ins, out, graph, { emit, fresh, i64 })) throw new Error(`no ONNX lowering for IR op "${n.op}"`);
    }
  }

  const valueInfo = (name: string, id: number): OnnxValueInfo => {
    const v = graph.values[id]!;
    return { name, elemType: ELEM[v.type], shape: onnxDims(v.shape) };
  };
  const inputs: OnnxValueInfo[] = graph.inputs.map((i) => valueInfo(i.name, i.value));
  const weights = [...planned.values()];
  for (const w of weights) {
    if (!w.overridable) continue;
    if (w.layout.kind === 'int8_linear' || w.layout.kind === 'int8_conv') {
      // Patched weights are quantised at feed time (codes + per-channel scales), so adapters keep int8 speed.
      inputs.push({ name: w.onnxName, elemType: OnnxType.INT8, shape: w.layout.dims });
      inputs.push({ name: scaleName(w.onnxName), elemType: OnnxType.FLOAT, shape: [w.layout.dims[1]!] });
      if (w.layout.kind === 'int8_conv' && w.layout.plain) {
        inputs.push({ name: plainName(w.onnxName), elemType: OnnxType.INT8, shape: w.layout.plain });
        inputs.push({ name: scaleName(plainName(w.onnxName)), elemType: OnnxType.FLOAT, shape: [w.layout.plain[1]!] });
      }
    } else inputs.push({ name: w.onnxName, elemType: OnnxType.FLOAT, shape: w.layout.dims });
  }
  const outputs: OnnxValueInfo[] = graph.outputs.map((o) => {
    const src = names.get(o.value)!;
    if (src !== o.name) emit('Identity', [src], [o.name]);
    return valueInfo(o.name, o.value);
  });
  return {
    model: { opset, extraOpsets: { 'com.microsoft': 1 }, graph: { name: 'resflow', nodes, inputs, outputs, initializers } },
    weights,
    inputNames: inputs.map((i) => i.name),
    outputNames: outputs.map((o) => o.name),
  };
}

const clampI64 = (v: number): number => Math.max(-(2 ** 62), Math.min(2 ** 62, v));

export function nearestAttrs(): Record<string, OnnxAttr> {
  // PyTorch's F.interpolate(mode="nearest") picks floor(out_index * in / out): asymmetric + floor.
  return { mode: { s: 'nearest' }, coordinate_transformation_mode: { s: 'asymmetric' }, nearest_mode: { s: 'floor' } };
}

interface Emitters {
  fused: boolean;
  emit: (opType: string, inputs: string[], outputs: string[], attributes?: Record<string, OnnxAttr>, domain?: string) => void;
  fresh: (hint: string) => string;
  i64: (values: number[]) => string;
}

function lowerAttention(n: Node, ins: string[], out: string, graph: Graph, e: Emitters): void {
  const heads = n.attrs.heads as number;
  const causal = Boolean(n.attrs.causal);
  const c = graph.values[n.inputs[0]!]!.shape[2];
  if (e.fused) {
    const attrs: Record<string, OnnxAttr> = { num_heads: { i: heads } };
    if (causal) attrs.unidirectional = { i: 1 };
    e.emit('MultiHeadAttention', ins, [out], attrs, 'com.microsoft');
    return;
  }
  if (typeof c !== 'number') throw new Error('attention needs a fixed channel count');
  const dh = c / heads;
  // [B, S, C] -> [B, heads, S, C/heads]; -1 because v may be wider than q and k.
  const split = (x: string, perm: number[]) => {
    const r = e.fresh('att_r');
    e.emit('Reshape', [x, e.i64([0, 0, heads, -1])], [r]);
    const t = e.fresh('att_t');
    e.emit('Transpose', [r], [t], { perm: { ints: perm } });
    return t;
  };
  const q = split(ins[0]!, [0, 2, 1, 3]);
  const kT = split(ins[1]!, [0, 2, 3, 1]);
  const v = split(ins[2]!, [0, 2, 1, 3]);
  const scores = e.fresh('att_scores');
  e.emit('MatMul', [q, kT], [scores]);
  const scale = e.fresh('att_scale');
  e.emit('Constant', [], [scale], { value: { t: { name: scale, dataType: OnnxType.FLOAT, dims: [], raw: new Uint8Array(new Float32Array([dh ** -0.5]).buffer) } } });
  let scaled = e.fresh('att_scaled');
  e.emit('Mul', [scores, scale], [scaled]);
  if (causal) {
    // Upper-triangular -inf mask built from the runtime sequence length.
    const sshape = e.fresh('att_sshape');
    e.emit('Shape', [scaled], [sshape], { start: { i: 2 } });
    const ones = e.fresh('att_ones');
    e.emit('ConstantOfShape', [sshape], [ones], { value: { t: { name: 'v', dataType: OnnxType.FLOAT, dims: [1], raw: new Uint8Array(new Float32Array([-Infinity]).buffer) } } });
    const mask = e.fresh('att_mask');
    e.emit('Trilu', [ones, e.i64([1])], [mask], { upper: { i: 1 } });
    const masked = e.fresh('att_masked');
    e.emit('Add', [scaled, mask], [masked]);
    scaled = masked;
  }
  const probs = e.fresh('att_probs');
  e.emit('Softmax', [scaled], [probs], { axis: { i: -1 } });
  const ctx = e.fresh('att_ctx');
  e.emit('MatMul', [probs, v], [ctx]);
  const back = e.fresh('att_back');
  e.emit('Transpose', [ctx], [back], { perm: { ints: [0, 2, 1, 3] } });
  e.emit('Reshape', [back, e.i64([0, 0, -1])], [out]);
}
