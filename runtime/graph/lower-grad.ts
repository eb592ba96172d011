import type { Graph, Node } from './ir.js';
import type { OnnxAttr } from '../onnx/model.js';
import { OnnxType } from '../onnx/model.js';

/**
 * ONNX lowering of the ops autodiff adds to the IR. Every size that depends on the batch or the image comes
 * from Shape() of a run-time tensor, so one compiled gradient graph serves every input size; sizes that are
 * fixed in the IR become constants so ORT can fold them.
 */
export interface GradEmitters {
  emit: (opType: string, inputs: string[], outputs: string[], attributes?: Record<string, OnnxAttr>, domain?: string) => void;
  fresh: (hint: string) => string;
  /** A 1-D int64 initializer (shared between equal values). */
  i64: (values: number[]) => string;
}

/** Emits the ONNX nodes for `n` and returns true, or returns false if `n` is not an autodiff op. */
export function lowerAutodiffOp(n: Node, ins: string[], out: string, graph: Graph, e: GradEmitters): boolean {
  const h = helpers(graph, e);
  const a = n.attrs;
  switch (n.op) {
    case 'erf':
      e.emit('Erf', ins, [out]);
      return true;
    case 'greater':
      e.emit('Greater', ins, [out]);
      return true;
    case 'conv2d_grad_input': {
      const [s, p, d] = [a.stride as number, a.padding as number, a.dilation as number];
      const w = graph.values[n.inputs[1]!]!.shape as number[];
      const [kh, kw] = [w[2]!, w[3]!];
      // Only for an initializer W: fed at run time (checkpointed training feeds every weight), the flip would
      // copy W twice per run, which costs more than the transposed conv itself.
      const constantW = graph.weights.some((x) => x.value === n.inputs[1] && !x.overridable);
      if (constantW && s === 1 && d === 1 && a.groups === 1 && p <= kh - 1 && p <= kw - 1) {
        // Stride 1: the transposed conv is a plain Conv of dy with W flipped in space and in/out swapped,
        // padded k-1-p, and its output is exactly ref's size. ORT's Conv is faster than its ConvTranspose,
        // and the flip folds at load when W is an initializer.
        const wt = e.fresh('cgi_wt');
        e.emit('Transpose', [ins[1]!], [wt], { perm: { ints: [1, 0, 2, 3] } });
        const wf = e.fresh('cgi_wflip');
        e.emit('Slice', [wt, e.i64([-1, -1]), e.i64([-(kh + 1), -(kw + 1)]), e.i64([2, 3]), e.i64([-1, -1])], [wf]);
        e.emit('Conv', [ins[0]!, wf], [out], {
          kernel_shape: { ints: [kh, kw] },
          pads: { ints: [kh - 1 - p, kw - 1 - p, kh - 1 - p, kw - 1 - p] },
        });
        return true;
      }
      // A strided conv maps s different input sizes to one output size: emit the largest (output_padding
      // s-1) and crop to the forward input's size. The extra rows receive no real gradient.
      const ct = e.fresh('cgi_ct');
      e.emit('ConvTranspose', [ins[0]!, ins[1]!], [ct], {
        kernel_shape: { ints: [kh, kw] },
        strides: { ints: [s, s] },
        pads: { ints: [p, p, p, p] },
        dilations: { ints: [d, d] },
        group: { i: a.groups as number },
        output_padding: { ints: [s - 1, s - 1] },
      });
      e.emit('Slice', [ct, e.i64([0, 0]), h.shape(ins[2]!, 2, 4), e.i64([2, 3])], [out]);
      return true;
    }
    case 'conv2d_grad_weight':
      lowerConvGradWeight(n, ins, out, graph, e, h);
      return true;
    case 'attention_probs':
      lowerAttentionProbs(n, ins, out, graph, e, h);
      return true;
    case 'upsample_nearest_grad': {
      // dx = M_h · dy · M_wᵀ with M[i, o] = (floor(o * in / out) == i): exact for every size pair, odd included.
      const mw = e.fresh('ung_mwt');
      e.emit('Transpose', [h.selection(ins[0]!, ins[1]!, 3)], [mw], { perm: { ints: [1, 0] } });
      const t = e.fresh('ung_t');
      e.emit('MatMul', [ins[0]!, mw], [t]);
      e.emit('MatMul', [h.selection(ins[0]!, ins[1]!, 2), t], [out]);
      return true;
    }
    case 'concat_grad': {
      const axis = a.axis as number;
      const parts = n.inputs.slice(1);
      let start = e.i64([0]);
      for (let j = 0; j < parts.length - 1; j++) start = h.bin('Add', start, h.dim(parts[j]!, ins[j + 1]!, axis));
      const end = h.bin('Add', start, h.dim(parts[parts.length - 1]!, ins[parts.length]!, axis));
      e.emit('Slice', [ins[0]!, start, end, e.i64([axis])], [out]);
      return true;
    }
    case 'slice_grad': {
      const [axis, start] = [a.axis as number, a.start as number];
      const rank = graph.values[n.inputs[1]!]!.shape.length;
      const d = h.dim(n.inputs[1]!, ins[1]!, axis);
      // Same clamping as Slice: a negative start counts from the end, then both ends are clamped to [0, d].
      const s = start >= 0 ? h.bin('Min', d, e.i64([start])) : h.bin('Max', h.bin('Add', d, e.i64([start])), e.i64([0]));
      const after = h.bin('Sub', h.bin('Sub', d, s), h.dim(n.inputs[0]!, ins[0]!, axis));
      // ONNX pads are [begin of every axis..., end of every axis...].
      const zeros = (k: number) => (k > 0 ? [e.i64(new Array(k).fill(0))] : []);
      const pads = h.concat([...zeros(axis), s, ...zeros(rank - 1), after, ...zeros(rank - axis - 1)]);
      e.emit('Pad', [ins[0]!, pads], [out], { mode: { s: 'constant' } });
      return true;
    }
    case 'reduce_grad':
      lowerReduceGrad(n, ins, out, graph, e, h);
      return true;
    default:
      return false;
  }
}

type Helpers = ReturnType<typeof helpers>;

function helpers(graph: Graph, e: GradEmitters) {
  const shape = (x: string, start: number, end: number): string => {
    const r = e.fresh('shape');
    e.emit('Shape', [x], [r], { start: { i: start }, end: { i: end } });
    return r;
  };
  const bin = (op: string, x: string, y: string): string => {
    const r = e.fresh(op.toLowerCase());
    e.emit(op, [x, y], [r]);
    return r;
  };
  /** Size of `axis` as a 1-element int64 tensor: a constant when the IR knows it. */
  const dim = (value: number, name: string, axis: number): string => {
    const d = graph.values[value]!.shape[axis];
    return typeof d === 'number' ? e.i64([d]) : shape(name, axis, axis + 1);
  };
  const reshape = (x: string, target: string): string => bin('Reshape', x, target);
  const concat = (parts: string[]): string => {
    const r = e.fresh('cat');
    e.emit('Concat', parts, [r], { axis: { i: 0 } });
    return r;
  };
  const scalarI64 = (v: number): string => {
    const r = e.fresh('s_i64');
    e.emit('Constant', [], [r], { value: { t: { name: r, dataType: OnnxType.INT64, dims: [], raw: new Uint8Array(new BigInt64Array([BigInt(v)]).buffer) } } });
    return r;
  };
  const scalarF32 = (v: number): string => {
    const r = e.fresh('s_f32');
    e.emit('Constant', [], [r], { value: { t: { name: r, dataType: OnnxType.FLOAT, dims: [], raw: new Uint8Array(new Float32Array([v]).buffer) } } });
    return r;
  };
  /** [in, out] float matrix selecting, for each output index o along `axis`, its nearest source floor(o*in/out). */
  const selection = (dy: string, ref: string, axis: number): string => {
    const outN = shape(dy, axis, axis + 1);
    const inN = shape(ref, axis, axis + 1);
    const range = (len: string) => {
      const lim = e.fresh('lim');
      e.emit('Squeeze', [len, e.i64([0])], [lim]);
      const r = e.fresh('range');
      e.emit('Range', [scalarI64(0), lim, scalarI64(1)], [r]);
      return r;
    };
    const src = bin('Div', bin('Mul', range(outN), inN), outN);
    const eq = bin('Equal', reshape(range(inN), e.i64([-1, 1])), reshape(src, e.i64([1, -1])));
    const m = e.fresh('sel');
    e.emit('Cast', [eq], [m], { to: { i: OnnxType.FLOAT } });
    return m;
  };
  return { shape, bin, dim, reshape, concat, scalarF32, selection };
}

/**
 * dW[o, c, ky, kx] = Σ_n,y,x dy[n, o, y, x] · x[n, c, y*s - p + ky*d, x*s - p + kx*d]: a conv over x in which
 * the batch plays the channel role and dy is the kernel (dilated by the forward stride, strided by the
 * forward dilation). Groups stay groups: x is laid out [C/g, g*N, H, W] and dy [O, N, Ho, Wo].
 */
function lowerConvGradWeight(n: Node, ins: string[], out: string, graph: Graph, e: GradEmitters, h: Helpers): void {
  const [s, p, d, g] = [n.attrs.stride, n.attrs.padding, n.attrs.dilation, n.attrs.groups] as number[] as [number, number, number, number];
  const [kh, kw] = n.attrs.kernel as number[] as [number, number];
  const C = graph.values[n.inputs[0]!]!.shape[1];
  const O = graph.values[n.inputs[1]!]!.shape[1];
  if (typeof C !== 'number' || typeof O !== 'number') throw new Error('conv2d_grad_weight needs fixed channel counts');
  if (kh === 1 && kw === 1 && s === 1 && p === 0 && g === 1) {
    // 1x1: dW[o, c] = Σ_n dy[n] · x[n]ᵀ over the flattened pixels, a batched MatMul summed over the batch.
    const flat = e.i64([0, 0, -1]);
    const xt = e.fresh('cgw_xt');
    e.emit('Transpose', [h.reshape(ins[0]!, flat)], [xt], { perm: { ints: [0, 2, 1] } });
    const prod = h.bin('MatMul', h.reshape(ins[1]!, flat), xt); // [N, O, C]
    const sum = e.fresh('cgw_sum');
    e.emit('ReduceSum', [prod, e.i64([0])], [sum], { keepdims: { i: 0 } });
    e.emit('Reshape', [sum, e.i64([O, C, 1, 1])], [out]);
    return;
  }
  const regroup = (x: string, ch: number, perm: number[], lead: number): string => {
    const split = h.reshape(x, h.concat([h.shape(x, 0, 1), e.i64([g, ch / g]), h.shape(x, 2, 4)]));
    const t = e.fresh('cgw_t');
    e.emit('Transpose', [split], [t], { perm: { ints: perm } });
    return h.reshape(t, h.concat([e.i64([lead, -1]), h.shape(x, 2, 4)]));
  };
  const xr = regroup(ins[0]!, C, [2, 1, 0, 3, 4], C / g); // [C/g, g*N, H, W]
  const dyr = regroup(ins[1]!, O, [1, 2, 0, 3, 4], O); // [O, N, Ho, Wo]
  const full = e.fresh('cgw_conv');
  e.emit('Conv', [xr, dyr], [full], {
    strides: { ints: [d, d] },
    dilations: { ints: [s, s] },
    pads: { ints: [p, p, p, p] },
    group: { i: g },
  });
  // Stride leftovers can make the result a row or column larger than the kernel.
  const cropped = e.fresh('cgw_crop');
  e.emit('Slice', [full, e.i64([0, 0]), e.i64([kh, kw]), e.i64([2, 3])], [cropped]);
  e.emit('Transpose', [cropped], [out], { perm: { ints: [1, 0, 2, 3] } });
}

function lowerAttentionProbs(n: Node, ins: string[], out: string, graph: Graph, e: GradEmitters, h: Helpers): void {
  const heads = n.attrs.heads as number;
  const c = graph.values[n.inputs[0]!]!.shape[2];
  if (typeof c !== 'number') throw new Error('attention_probs needs a fixed channel count');
  const dh = c / heads;
  const split = (x: string, perm: number[]) => {
    const t = e.fresh('ap_t');
    e.emit('Transpose', [h.reshape(x, e.i64([0, 0, heads, dh]))], [t], { perm: { ints: perm } });
    return t;
  };
  // Scaling q rather than the scores avoids one more [B, heads, S, L] temporary.
  let scores = h.bin('MatMul', split(h.bin('Mul', ins[0]!, h.scalarF32(dh ** -0.5)), [0, 2, 1, 3]), split(ins[1]!, [0, 2, 3, 1]));
  if (n.attrs.causal) {
    const sl = e.fresh('ap_sl');
    e.emit('Shape', [scores], [sl], { start: { i: 2 } });
    const inf = e.fresh('ap_inf');
    e.emit('ConstantOfShape', [sl], [inf], { value: { t: { name: 'v', dataType: OnnxType.FLOAT, dims: [1], raw: new Uint8Array(new Float32Array([-Infinity]).buffer) } } });
    const mask = e.fresh('ap_mask');
    e.emit('Trilu', [inf, e.i64([1])], [mask], { upper: { i: 1 } });
    scores = h.bin('Add', scores, mask);
  }
  e.emit('Softmax', [scores], [out], { axis: { i: -1 } });
}

function lowerReduceGrad(n: Node, ins: string[], out: string, graph: Graph, e: GradEmitters, h: Helpers): void {
  const refShape = graph.values[n.inputs[1]!]!.shape;
  const rank = refShape.length;
  const given = n.attrs.axes as number[];
  const axes = (given.length ? given.map((x) => (x < 0 ? x + rank : x)) : refShape.map((_, i) => i)).sort((x, y) => x - y);
  let x = ins[0]!;
  if (!n.attrs.keepdims) x = h.bin('Unsqueeze', x, e.i64(axes));
  const full = n.attrs.mean ? e.fresh('rg_full') : out;
  e.emit('Expand', [x, h.shape(ins[1]!, 0, rank)], [full]);
  if (!n.attrs.mean) return;
  const dims = axes.map((i) => refShape[i]!);
  let count: string;
  if (dims.every((d) => typeof d === 'number')) count = h.scalarF32((dims as number[]).reduce((p, q) => p * q, 1));
  else {
    const sizes = e.fresh('rg_sizes');
    e.emit('Gather', [h.shape(ins[1]!, 0, rank), e.i64(axes)], [sizes], { axis: { i: 0 } });
    const f = e.fresh('rg_sizes_f');
    e.emit('Cast', [sizes], [f], { to: { i: OnnxType.FLOAT } });
    count = e.fresh('rg_count');
    e.emit('ReduceProd', [f], [count], { keepdims: { i: 0 } });
  }
  e.emit('Div', [full, count], [out]);
}
