import type { PlannedWeight, WeightLayout } from './compile.js';
import { OnnxType, type OnnxTypeCode } from '../onnx/model.js';
import { scaleName } from './lower-int8.js';
import { quantizePerChannel } from './quantize.js';

/** One initializer's worth of bytes for a baked weight. */
export interface BakedTensor {
  name: string;
  dataType: OnnxTypeCode;
  dims: number[];
  bytes: Uint8Array;
}

const count = (dims: number[]) => dims.reduce((a, b) => a * b, 1);

/** Bytes a baked weight occupies in the session (int8 codes plus fp32 scales, or fp32 values). */
export function bakedBytes(layout: WeightLayout): number {
  if (layout.kind === 'int8_linear' || layout.kind === 'int8_conv') return count(layout.dims) + 4 * layout.dims[1]!;
  return 4 * count(layout.dims);
}

/** Applies a weight layout to PyTorch-layout data, quantising the int8 layouts. */
export function bakedTensors(w: PlannedWeight, data: Float32Array): BakedTensor[] {
  const layout = w.layout;
  if (layout.kind === 'int8_linear' || layout.kind === 'int8_conv') {
    const [inner, out] = layout.dims as [number, number];
    const q = quantizePerChannel(data, out, inner);
    const codes = new Int8Array(inner * out);
    if (layout.kind === 'int8_linear') {
      // [out, in] -> [in, out]
      for (let o = 0; o < out; o++) for (let i = 0; i < inner; i++) codes[i * out + o] = q.data[o * inner + i]!;
    } else {
      // [O, C, kh, kw] -> [(kh_i * kw + kw_i) * C + c, O]: taps outermost, as the im2col concatenates them.
      const taps = layout.taps;
      const c = inner / taps;
      for (let o = 0; o < out; o++) {
        for (let ci = 0; ci < c; ci++) for (let k = 0; k < taps; k++) codes[(k * c + ci) * out + o] = q.data[(o * c + ci) * taps + k]!;
      }
    }
    return [
      { name: w.onnxName, dataType: OnnxType.INT8, dims: layout.dims, bytes: new Uint8Array(codes.buffer) },
      { name: scaleName(w.onnxName), dataType: OnnxType.FLOAT, dims: [out], bytes: new Uint8Array(q.scales.buffer) },
    ];
  }
  const t = layout.kind === 'transpose2d' ? transpose2d(data, layout.dims as [number, number]) : data;
  return [{ name: w.onnxName, dataType: OnnxType.FLOAT, dims: layout.dims, bytes: new Uint8Array(t.buffer, t.byteOffset, t.byteLength) }];
}

/** A graph input's worth of a fed (overridable) weight: fp32 values, or int8 codes and their scales. */
export interface FedTensor {
  name: string;
  data: Float32Array | Int8Array;
  dims: number[];
}

/**
 * What an overridable weight feeds at run time, from PyTorch-layout data: the same layout as a baked weight, so
 * an int8 session quantises a patched weight (LoRA, ResAdapter) exactly as it would have baked the merged one.
 */
export function fedTensors(w: PlannedWeight, data: Float32Array): FedTensor[] {
  if (w.layout.kind === 'int8_linear' || w.layout.kind === 'int8_conv') {
    return bakedTensors(w, data).map((t) => ({
      name: t.name,
      data: t.dataType === OnnxType.INT8 ? new Int8Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength) : new Float32Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength / 4),
      dims: t.dims,
    }));
  }
  return [{ name: w.onnxName, data: w.layout.kind === 'transpose2d' ? transpose2d(data, w.layout.dims as [number, number]) : data, dims: w.layout.dims }];
}

function transpose2d(data: Float32Array, [inF, outF]: [number, number]): Float32Array {
  const t = new Float32Array(data.length);
  for (let o = 0; o < outF; o++) {
    const row = o * inF;
    for (let i = 0; i < inF; i++) t[i * outF + o] = data[row + i]!;
  }
  return t;
}
