/** F16 / BF16 conversions at the edges: subnormals, infinities, NaN, signed zero, round-to-nearest-even ties. */
import { describe, expect, it } from 'vitest';
import { bytesToFloat32, float32ToBytes, floatToHalfBits, halfBitsToFloat } from '../../runtime/safetensors/index.js';

const f32FromBits = (u: number) => new Float32Array(new Uint32Array([u]).buffer)[0]!;
const bitsOfF32 = (v: number) => new Uint32Array(new Float32Array([v]).buffer)[0]!;
/** BF16 bits of a float32 given by its own bits, so NaN payloads and subnormals survive the trip. */
const bf16 = (f32bits: number) => new DataView(float32ToBytes(new Float32Array(new Uint32Array([f32bits]).buffer), 'BF16').buffer).getUint16(0, true);
const u16le = (...v: number[]) => new Uint8Array(Uint16Array.from(v).buffer);

describe('F16 decode', () => {
  it.each([
    [0x0000, 0],
    [0x0001, 2 ** -24], // smallest subnormal
    [0x03ff, 1023 * 2 ** -24], // largest subnormal
    [0x0400, 2 ** -14], // smallest normal
    [0x3c00, 1],
    [0x3c01, 1 + 2 ** -10],
    [0xc000, -2],
    [0x7bff, 65504], // largest finite
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
    [0x8001, -(2 ** -24)],
  ])('0x%s -> %d', (h, v) => {
    expect(halfBitsToFloat(h)).toBe(v);
    expect(bytesToFloat32(u16le(h), 'F16')[0]).toBe(v);
  });

  it('keeps the sign of zero and decodes every NaN pattern as NaN', () => {
    expect(Object.is(halfBitsToFloat(0x8000), -0)).toBe(true);
    expect(Object.is(bytesToFloat32(u16le(0x8000), 'F16')[0], -0)).toBe(true);
    for (const h of [0x7c01, 0x7e00, 0x7fff, 0xfc01, 0xfe00, 0xffff]) expect(halfBitsToFloat(h)).toBeNaN();
  });

  it('decode then encode is the identity on all 63490 non-NaN halves', () => {
    let bad = 0;
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00 && h & 0x3ff) continue;
      if (floatToHalfBits(halfBitsToFloat(h)) !== h) bad++;
    }
    expect(bad).toBe(0);
  });
});

describe('F16 encode (round to nearest, ties to even)', () => {
  it.each([
    ['max finite', 65504, 0x7bff],
    ['just below the overflow tie', 65519.99, 0x7bff],
    ['overflow tie rounds to inf', 65520, 0x7c00],
    ['huge', 1e10, 0x7c00],
    ['-huge', -1e10, 0xfc00],
    ['inf', Infinity, 0x7c00],
    ['-inf', -Infinity, 0xfc00],
    ['-0', -0, 0x8000],
    ['tie 1 + 2^-11 -> 1 (even)', 1 + 2 ** -11, 0x3c00],
    ['tie 1 + 3*2^-11 -> 1 + 2^-9 (even)', 1 + 3 * 2 ** -11, 0x3c02],
    ['above the tie rounds up', 1 + 2 ** -11 + 2 ** -20, 0x3c01],
    ['smallest subnormal', 2 ** -24, 0x0001],
    ['half the smallest subnormal ties to 0', 2 ** -25, 0x0000],
    ['just above that rounds up', 2 ** -25 * (1 + 2 ** -10), 0x0001],
    ['3/2 of the smallest subnormal ties to 2 (even)', 3 * 2 ** -25, 0x0002],
    ['underflow to -0', -(2 ** -26), 0x8000],
    ['largest subnormal', 1023 * 2 ** -24, 0x03ff],
    ['rounds up from subnormal into the smallest normal', 2 ** -14 * (1 - 2 ** -12), 0x0400],
    ['smallest normal', 2 ** -14, 0x0400],
  ])('%s', (_, v, h) => {
    expect(floatToHalfBits(v)).toBe(h);
    expect(new DataView(float32ToBytes([v], 'F16').buffer).getUint16(0, true)).toBe(h);
  });

  it('NaN stays NaN, with its sign', () => {
    for (const [v, sign] of [[NaN, 0], [f32FromBits(0xffc00000), 0x8000], [f32FromBits(0x7f800001), 0], [f32FromBits(0x7fffffff), 0]] as const) {
      const h = floatToHalfBits(v);
      expect(h & 0x7c00).toBe(0x7c00);
      expect(h & 0x3ff).not.toBe(0);
      expect(h & 0x8000).toBe(sign);
    }
  });
});

describe('BF16', () => {
  it('decodes by widening the bits', () => {
    const got = bytesToFloat32(u16le(0x3f80, 0xc000, 0x7f80, 0xff80, 0x0001, 0x8000, 0x7f7f), 'BF16');
    expect(Array.from(got)).toEqual([1, -2, Infinity, -Infinity, f32FromBits(0x00010000), -0, f32FromBits(0x7f7f0000)]);
    expect(Object.is(got[5], -0)).toBe(true);
    expect(bytesToFloat32(u16le(0x7fc0), 'BF16')[0]).toBeNaN();
  });

  it.each([
    ['exact', 0x3f800000, 0x3f80],
    ['tie rounds to even (down)', 0x3f808000, 0x3f80],
    ['tie rounds to even (up)', 0x3f818000, 0x3f82],
    ['above tie', 0x3f808001, 0x3f81],
    ['below tie', 0x3f807fff, 0x3f80],
    ['f32 max rounds to inf', 0x7f7fffff, 0x7f80],
    ['largest value that stays finite', 0x7f7f7fff, 0x7f7f],
    ['-f32 max rounds to -inf', 0xff7fffff, 0xff80],
    ['inf', 0x7f800000, 0x7f80],
    ['-inf', 0xff800000, 0xff80],
    ['-0', 0x80000000, 0x8000],
    ['f32 subnormal below half a bf16 ulp -> 0', 0x00007fff, 0x0000],
    ['f32 subnormal tie -> even 0', 0x00008000, 0x0000],
    ['f32 subnormal tie -> even 2', 0x00018000, 0x0002],
    ['f32 subnormal kept', 0x00010000, 0x0001],
  ])('%s', (_, f32bits, h) => {
    expect(bf16(f32bits)).toBe(h);
  });

  it('never turns a NaN into a number, whatever its payload', () => {
    for (const b of [0x7fc00000, 0xffc00000, 0x7f800001, 0x7fffffff, 0xffffffff, 0xff800001, 0x7fff8000]) {
      const h = bf16(b);
      expect(h & 0x7f80, `0x${b.toString(16)} -> 0x${h.toString(16)}`).toBe(0x7f80);
      expect(h & 0x7f, `0x${b.toString(16)} -> 0x${h.toString(16)}`).not.toBe(0);
      expect(h & 0x8000).toBe((b >>> 16) & 0x8000);
    }
    expect(bf16(bitsOfF32(NaN)) & 0x7fff).toBe(0x7fc0);
  });

  it('round trips every bf16 value exactly', () => {
    const all = new Uint16Array(0x10000).map((_, i) => i);
    const back = new Uint16Array(float32ToBytes(bytesToFloat32(new Uint8Array(all.buffer), 'BF16'), 'BF16').buffer);
    let bad = 0;
    for (let h = 0; h < 0x10000; h++) {
      const nan = (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
      if (nan ? !((back[h]! & 0x7f80) === 0x7f80 && back[h]! & 0x7f) : back[h] !== h) bad++;
    }
    expect(bad).toBe(0);
  });
});

describe('other dtypes decode to float32', () => {
  it('reads integers and F64 little-endian, including unaligned F32', () => {
    const buf = new Uint8Array(8 * 3);
    const dv = new DataView(buf.buffer);
    [-(2 ** 40), 7, -1].forEach((v, i) => dv.setBigInt64(i * 8, BigInt(v), true));
    expect(Array.from(bytesToFloat32(buf, 'I64'))).toEqual([-(2 ** 40), 7, -1]);
    [0.1, -2.5, 1e300].forEach((v, i) => dv.setFloat64(i * 8, v, true));
    expect(Array.from(bytesToFloat32(buf, 'F64'))).toEqual([Math.fround(0.1), -2.5, Infinity]);
    expect(Array.from(bytesToFloat32(new Uint8Array([0xff, 0x80, 0x7f, 0x00]), 'I8'))).toEqual([-1, -128, 127, 0]);
    expect(Array.from(bytesToFloat32(new Uint8Array([0xff, 0x80, 0x7f, 0x00]), 'U8'))).toEqual([255, 128, 127, 0]);
    expect(Array.from(bytesToFloat32(new Uint8Array([0xff, 0xff, 0x00, 0x80]), 'I16'))).toEqual([-1, -32768]);
    const unaligned = new Uint8Array(9);
    new DataView(unaligned.buffer).setFloat32(1, 3.25, true);
    new DataView(unaligned.buffer).setFloat32(5, -0.5, true);
    expect(Array.from(bytesToFloat32(unaligned.subarray(1), 'F32'))).toEqual([3.25, -0.5]);
  });
});
