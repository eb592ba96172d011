/**
 * Symmetric per-output-channel int8 weight quantisation: each output channel (row of the PyTorch-layout
 * weight) gets scale = max|w| / 127 and codes round(w / scale) in [-127, 127]. Symmetric so ORT's
 * integer GEMMs need no weight zero point; -128 is never used so the code range stays balanced.
 */
export interface QuantizedWeight {
  /** Int8 codes in the same layout as the input ([out, inner]). */
  data: Int8Array;
  /** One scale per output channel. */
  scales: Float32Array;
}

export function quantizePerChannel(w: Float32Array, out: number, inner: number): QuantizedWeight {
  if (w.length !== out * inner) throw new Error(`quantizePerChannel: ${w.length} values do not form [${out}, ${inner}]`);
  const data = new Int8Array(w.length);
  const scales = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    const row = o * inner;
    let amax = 0;
    for (let i = 0; i < inner; i++) {
      const a = Math.abs(w[row + i]!);
      if (a > amax) amax = a;
    }
    if (!Number.isFinite(amax)) throw new Error(`quantizePerChannel: output channel ${o} holds a non-finite weight`);
    const scale = amax > 0 ? amax / 127 : 1;
    scales[o] = scale;
    const inv = 1 / scale;
    for (let i = 0; i < inner; i++) data[row + i] = Math.round(w[row + i]! * inv);
  }
  return { data, scales };
}

/** Codes back to floats (tests, and error reports). */
export function dequantizePerChannel(q: QuantizedWeight, out: number, inner: number): Float32Array {
  const w = new Float32Array(out * inner);
  for (let o = 0; o < out; o++) for (let i = 0; i < inner; i++) w[o * inner + i] = q.data[o * inner + i]! * q.scales[o]!;
  return w;
}

/** ‖a − b‖ / ‖b‖: how the int8 figures (tests, benches, README) state an error against the fp32 result `b`. */
export function relativeRms(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / den);
}
