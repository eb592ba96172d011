/** Element types a safetensors file may hold, with their byte sizes. */
export const DTYPE_SIZES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
} as const;

export type DType = keyof typeof DTYPE_SIZES;

export function isDType(x: unknown): x is DType {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZES, x);
}

const f16Table = buildF16Table();

function buildF16Table(): Float32Array {
  // 65536 entries: a table beats bit-twiddling per element when converting multi-GB checkpoints.
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = halfBitsToFloat(h);
  return t;
}

export function halfBitsToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Round-to-nearest-even float32 → IEEE half bits. */
export function floatToHalfBits(v: number): number {
  f32Scratch[0] = v;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** Decodes little-endian raw bytes of the given dtype into float32 values. */
export function bytesToFloat32(bytes: Uint8Array, dtype: DType): Float32Array {
  const n = bytes.byteLength / DTYPE_SIZES[dtype];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  switch (dtype) {
    case 'F32':
      if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
      return out;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(i * 8, true);
      return out;
    case 'F16':
      if (bytes.byteOffset % 2 === 0) {
        // Little-endian hosts (all we run on) can index the halves directly: ~10x faster than DataView.
        const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
        for (let i = 0; i < n; i++) out[i] = f16Table[halves[i]!]!;
      } else for (let i = 0; i < n; i++) out[i] = f16Table[view.getUint16(i * 2, true)]!;
      return out;
    case 'BF16': {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = view.getUint16(i * 2, true) << 16;
      return out;
    }
    case 'I64':
      for (let i = 0; i < n; i++) out[i] = Number(view.getBigInt64(i * 8, true));
      return out;
    case 'I32':
      for (let i = 0; i < n; i++) out[i] = view.getInt32(i * 4, true);
      return out;
    case 'I16':
      for (let i = 0; i < n; i++) out[i] = view.getInt16(i * 2, true);
      return out;
    case 'I8':
      for (let i = 0; i < n; i++) out[i] = view.getInt8(i);
      return out;
    case 'U8':
    case 'BOOL':
      for (let i = 0; i < n; i++) out[i] = bytes[i]!;
      return out;
  }
}

/** Encodes float values as little-endian bytes of the given floating dtype. */
export function float32ToBytes(values: ArrayLike<number>, dtype: 'F32' | 'F16' | 'BF16'): Uint8Array {
  const n = values.length;
  if (dtype === 'F32') {
    const f = Float32Array.from(values);
    return new Uint8Array(f.buffer);
  }
  const out = new Uint8Array(n * 2);
  const view = new DataView(out.buffer);
  if (dtype === 'F16') {
    for (let i = 0; i < n; i++) view.setUint16(i * 2, floatToHalfBits(values[i]!), true);
  } else {
    for (let i = 0; i < n; i++) {
      f32Scratch[0] = values[i]!;
      const x = u32Scratch[0]!;
      // NaN first: the rounding add below would carry a large NaN payload into the exponent (NaN -> ±0).
      if ((x & 0x7fffffff) > 0x7f800000) {
        view.setUint16(i * 2, (x >>> 16) | 0x40, true);
        continue;
      }
      // round to nearest even on the dropped 16 bits
      const r = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
      view.setUint16(i * 2, r & 0xffff, true);
    }
  }
  return out;
}
