import type { PlannedWeight, WeightLayout } from './compile.js';
import { OnnxType, type OnnxTypeCode } from '../onnx/model.js';
import { scaleName } from './lower-int8.js';
import { quantizePerChannel } from './quantize.js';
import { plainName, subpixelWeight } from './subpixel.js';

/**
 * A weight as the session holds it, from its PyTorch-layout data: fp32 values (transposed for MatMul), or int8
 * codes and their per-channel scales. The same tensors are baked as initializers or fed as graph inputs
 * (overridable weights), so an int8 session quantises a patched weight (LoRA, ResAdapter) exactly as it would
 * have baked the merged one.
 */
export interface LaidOutTensor {
  name: string;
  data: Float32Array | Int8Array;
  dims: number[];
}

const count = (dims: number[]) => dims.reduce((a, b) => a * b, 1);
const isInt8 = (layout: WeightLayout) => layout.kind === 'int8_linear' || layout.kind === 'int8_conv';

/** Bytes a baked weight occupies in the session (int8 codes plus fp32 scales, or fp32 values). */
export function bakedBytes(layout: WeightLayout): number {
  if (!isInt8(layout)) return 4 * count(layout.dims);
  const plain = layout.kind === 'int8_conv' && layout.plain ? count(layout.plain) + 4 * layout.plain[1]! : 0;
  return count(layout.dims) + 4 * layout.dims[1]! + plain;
}

/** An fp32 layout applied to PyTorch-layout data ([out, in] → [in, out] for MatMul; sub-pixel convs; others as they are). */
export function applyLayout(data: Float32Array, layout: WeightLayout): Float32Array {
  if (layout.kind === 'subpixel') return subpixelWeight(data, layout.dims[0]! / 4, layout.dims[1]!);
  if (layout.kind !== 'transpose2d') return data;
  const [inF, outF] = layout.dims as [number, number];
  const t = new Float32Array(data.length);
  for (let o = 0; o < outF; o++) {
    const row = o * inF;
    for (let i = 0; i < inF; i++) t[i * outF + o] = data[row + i]!;
  }
  return t;
}

/** Applies a weight's layout to PyTorch-layout data, quantising the int8 layouts. */
export function laidOutTensors(w: PlannedWeight, data: Float32Array): LaidOutTensor[] {
  const layout = w.layout;
  if (layout.kind !== 'int8_linear' && layout.kind !== 'int8_conv') return [{ name: w.onnxName, data: applyLayout(data, layout), dims: layout.dims }];
  if (layout.kind === 'int8_linear' || !layout.subpixel) return int8Tensors(w.onnxName, data, layout);
  const [inner, out] = layout.dims as [number, number];
  // A sub-pixel kernel is formed in float first, then quantised per its own (phase, channel) rows. Run-time
  // dispatched ones (UNet skip sizes) also keep today's 3×3 codes for odd sizes.
  const tensors = int8Tensors(w.onnxName, subpixelWeight(data, out / 4, inner / 4), layout);
  if (layout.plain) tensors.push(...int8Tensors(plainName(w.onnxName), data, { kind: 'int8_conv', dims: layout.plain, taps: 9 }));
  return tensors;
}

function int8Tensors(name: string, data: Float32Array, layout: { kind: 'int8_linear' | 'int8_conv'; dims: number[]; taps?: number }): LaidOutTensor[] {
  const [inner, out] = layout.dims as [number, number];
  const q = quantizePerChannel(data, out, inner);
  const codes = new Int8Array(inner * out);
  if (layout.kind === 'int8_linear') {
    // [out, in] -> [in, out]
    for (let o = 0; o < out; o++) for (let i = 0; i < inner; i++) codes[i * out + o] = q.data[o * inner + i]!;
  } else {
    // [O, C, kh, kw] -> [(kh_i * kw + kw_i) * C + c, O]: taps outermost, as the im2col concatenates them.
    const taps = layout.taps!;
    const c = inner / taps;
    for (let o = 0; o < out; o++) {
      for (let ci = 0; ci < c; ci++) for (let k = 0; k < taps; k++) codes[(k * c + ci) * out + o] = q.data[(o * c + ci) * taps + k]!;
    }
  }
  return [
    { name, data: codes, dims: layout.dims },
    { name: scaleName(name), data: q.scales, dims: [out] },
  ];
}

/** A laid-out tensor as initializer bytes. */
export function tensorBytes(t: LaidOutTensor): { dataType: OnnxTypeCode; bytes: Uint8Array } {
  return { dataType: t.data instanceof Int8Array ? OnnxType.INT8 : OnnxType.FLOAT, bytes: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) };
}
