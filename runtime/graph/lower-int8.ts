import type { Graph, Node } from './ir.js';
import type { OnnxAttr } from '../onnx/model.js';
import { OnnxType } from '../onnx/model.js';

/**
 * int8 lowering of linear layers and convolutions: weights stored as symmetric per-output-channel int8 codes
 * (quantised at session build, see weight-tensors.ts), activations quantised per tensor at run time.
 *
 * Measured on ORT 1.30 CPU (bench/int8-kernels.bench.ts): com.microsoft.DynamicQuantizeMatMul runs the SD1.5
 * linear shapes at about half the fp32 MatMul time; ConvInteger has no fast kernel (3–4× slower than fp32 Conv)
 * and QLinearConv needs a static output scale, so a k×k convolution becomes an im2col on the *quantised* u8
 * input (one byte a value, so the nine shifted copies are cheap) feeding MatMulInteger, at ~0.55–0.6× fp32.
 */

export type Precision = 'fp32' | 'int8';
export const PRECISIONS = ['fp32', 'int8'] as const;

/** Where a quantised weight's scales live beside its codes. */
export const scaleName = (onnxName: string): string => `${onnxName}.qscale`;

// Numerically sensitive or tiny layers stay fp32: the time / label embeddings, convs with few channels (a UNet's
// or VAE's first and last conv: 4 latent or 3 RGB channels), where quantisation error is largest relative to the
// work saved, and 1×1 convs over a channel concat (a UNet decoder resblock's skip_connection over [h, skip]).
// Those see the raw, unnormalised encoder features beside the decoder's, whose ranges differ so much that one
// per-tensor activation scale made them three quarters of the ResFlow Shapes UNet's int8 eps error (4.8e-2 → 1.3e-2
// in fp32; quantising each concat part with its own scale only reached 2.5e-2); in SD1.5 they are 2 % of the FLOPs.
const KEEP_FP32 = /(^|\.)(time_embed|label_emb|time_embedding|add_embedding)\./;
const MIN_CHANNELS = 16;

const concatOutputs = new WeakMap<Graph, Set<number>>();

function producedByChannelConcat(graph: Graph, value: number): boolean {
  let set = concatOutputs.get(graph);
  if (!set) {
    set = new Set(graph.nodes.filter((n) => n.op === 'concat' && n.attrs.axis === 1).flatMap((n) => n.outputs));
    concatOutputs.set(graph, set);
  }
  return set.has(value);
}

/** Whether a weight used by `uses` (all its consumers) gets an int8 layout; returns the layout dims. */
export function int8LayoutFor(
  graph: Graph,
  name: string,
  shape: number[],
  consumers: { node: Node; slot: number }[],
): { kind: 'int8_linear'; dims: number[] } | { kind: 'int8_conv'; dims: number[]; taps: number } | undefined {
  if (KEEP_FP32.test(name) || consumers.length === 0) return undefined;
  if (consumers.every((c) => c.node.op === 'linear' && c.slot === 1) && shape.length === 2) {
    if (shape[0]! < MIN_CHANNELS || shape[1]! < MIN_CHANNELS) return undefined;
    return { kind: 'int8_linear', dims: [shape[1]!, shape[0]!] };
  }
  if (consumers.every((c) => c.node.op === 'conv2d' && c.slot === 1 && c.node.attrs.groups === 1 && c.node.attrs.dilation === 1) && shape.length === 4) {
    const [o, i, kh, kw] = shape as [number, number, number, number];
    const x = graph.values[consumers[0]!.node.inputs[0]!]!.shape;
    if (o < MIN_CHANNELS || i < MIN_CHANNELS || x.length !== 4) return undefined;
    if (kh === 1 && kw === 1 && consumers.some((c) => producedByChannelConcat(graph, c.node.inputs[0]!))) return undefined;
    return { kind: 'int8_conv', dims: [kh * kw * i, o], taps: kh * kw };
  }
  return undefined;
}

interface Emit {
  emit: (opType: string, inputs: string[], outputs: string[], attributes?: Record<string, OnnxAttr>, domain?: string) => void;
  fresh: (hint: string) => string;
  i64: (values: number[]) => string;
}

/** x[..., in] · W + b with W as int8 codes [in, out] and per-column scales. */
export function lowerInt8Linear(ins: string[], out: string, e: Emit): void {
  const inputs = [ins[0]!, ins[1]!, scaleName(ins[1]!)];
  if (ins.length > 2) inputs.push('', ins[2]!);
  e.emit('DynamicQuantizeMatMul', inputs, [out], undefined, 'com.microsoft');
}

/**
 * NCHW conv with int8 codes laid out [kh*kw*C, O] (row (kh_i*kw + kw_i)*C + c). 1×1 stride-1 convs are a plain
 * quantised MatMul over channels-last pixels; larger kernels gather their taps from the u8 input.
 */
export function lowerInt8Conv(n: Node, ins: string[], out: string, wShape: number[], e: Emit, finishNhwc?: (nhwc: string) => void): void {
  const [, , kh, kw] = wShape as [number, number, number, number];
  const p = n.attrs.padding as number;
  const s = n.attrs.stride as number;
  const bias = ins[2];
  const nhwcOut = e.fresh('qc_nhwc');
  if (kh === 1 && kw === 1 && p === 0 && s === 1) {
    const xt = e.fresh('qc_xt');
    e.emit('Transpose', [ins[0]!], [xt], { perm: { ints: [0, 2, 3, 1] } });
    const inputs = [xt, ins[1]!, scaleName(ins[1]!)];
    if (bias) inputs.push('', bias);
    e.emit('DynamicQuantizeMatMul', inputs, [nhwcOut], undefined, 'com.microsoft');
  } else {
    const [xq, xs, xz] = [e.fresh('qc_xq'), e.fresh('qc_xs'), e.fresh('qc_xz')];
    e.emit('DynamicQuantizeLinear', [ins[0]!], [xq, xs, xz]);
    // Channels-last before the gather: the taps then concatenate on the last axis straight into the GEMM's
    // [B, Ho, Wo, kh*kw*C] operand, so only the 1× input (not the kh*kw× columns) is transposed.
    let src = e.fresh('qc_xqt');
    e.emit('Transpose', [xq], [src], { perm: { ints: [0, 2, 3, 1] } });
    if (p > 0) {
      // Padding with the zero point is padding with real zeros.
      const padded = e.fresh('qc_pad');
      e.emit('Pad', [src, e.i64([0, p, p, 0, 0, p, p, 0]), xz], [padded]);
      src = padded;
    }
    const taps: string[] = [];
    const big = 2 ** 62;
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        // Ends counted from the far edge so every tap has exactly floor((Hp - k) / s) + 1 rows, whatever H is.
        const endH = i === kh - 1 ? big : i - (kh - 1);
        const endW = j === kw - 1 ? big : j - (kw - 1);
        const tap = e.fresh('qc_tap');
        e.emit('Slice', [src, e.i64([i, j]), e.i64([endH, endW]), e.i64([1, 2]), e.i64([s, s])], [tap]);
        taps.push(tap);
      }
    }
    let colsT = taps[0]!;
    if (taps.length > 1) {
      colsT = e.fresh('qc_cols');
      e.emit('Concat', taps, [colsT], { axis: { i: 3 } });
    }
    const acc = e.fresh('qc_acc');
    e.emit('MatMulInteger', [colsT, ins[1]!, xz], [acc]);
    const accF = e.fresh('qc_accf');
    e.emit('Cast', [acc], [accF], { to: { i: OnnxType.FLOAT } });
    const scale = e.fresh('qc_scale');
    e.emit('Mul', [xs, scaleName(ins[1]!)], [scale]);
    if (bias) {
      const scaled = e.fresh('qc_scaled');
      e.emit('Mul', [accF, scale], [scaled]);
      e.emit('Add', [scaled, bias], [nhwcOut]);
    } else e.emit('Mul', [accF, scale], [nhwcOut]);
  }
  if (finishNhwc) finishNhwc(nhwcOut);
  else e.emit('Transpose', [nhwcOut], [out], { perm: { ints: [0, 3, 1, 2] } });
}
