/**
 * Port of PyTorch's CPU generator (CPUGeneratorImpl + the CPU `normal_` kernels of torch 1.13/2.x),
 * so that `new TorchGenerator(seed).randn(n)` gives the same float32 values as
 * `torch.manual_seed(seed); torch.randn(n)` on an x86-64 CPU with AVX2, i.e. what ComfyUI uses for
 * its initial noise (`prepare_noise`) and for its default ancestral/SDE noise sampler.
 *
 * Three parts have to agree bit for bit with torch:
 *  - the engine: a textbook mt19937 seeded with the low 32 bits of the 64-bit seed;
 *  - the sampling schedule: for numel >= 16 all uniforms are drawn first, then transformed by
 *    Box-Muller in blocks of 16 (first 8 lanes feed log, last 8 feed sin/cos), and a ragged tail is
 *    handled by drawing 16 fresh uniforms and recomputing the last 16 outputs; for numel < 16 each
 *    element comes from the double-precision Box-Muller that caches its second value in the
 *    generator (so the cache survives between calls, like torch's next_double_normal_sample);
 *  - the float32 arithmetic of the AVX2 block kernel, which uses the Cephes-style log256_ps and
 *    sincos256_ps of avx_mathfun.h instead of libm. The emulation below mirrors every float32
 *    rounding step of those routines, including the places where GCC fuses a multiply with the
 *    following add into an FMA (the kernels are compiled with -mfma and GCC's default
 *    -ffp-contract=fast), which is what the reference tensors require.
 */

const f32 = Math.fround;

// ---------------------------------------------------------------------------------------------
// mt19937

const MT_N = 624;
const MT_M = 397;

/** 32-bit Mersenne twister, state layout as in std::mt19937 / at::mt19937. */
export class Mt19937 {
  private readonly state = new Uint32Array(MT_N);
  private index = MT_N;

  constructor(seed32 = 5489) {
    this.seed(seed32);
  }

  seed(seed32: number): void {
    const st = this.state;
    st[0] = seed32 >>> 0;
    for (let i = 1; i < MT_N; i++) {
      const prev = st[i - 1]!;
      st[i] = (Math.imul(1812433253, (prev ^ (prev >>> 30)) >>> 0) + i) >>> 0;
    }
    this.index = MT_N;
  }

  private twist(): void {
    const st = this.state;
    for (let k = 0; k < MT_N; k++) {
      const k1 = k + 1 === MT_N ? 0 : k + 1;
      const km = k + MT_M < MT_N ? k + MT_M : k + MT_M - MT_N;
      const y = (st[k]! & 0x80000000) | (st[k1]! & 0x7fffffff);
      st[k] = st[km]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    }
    this.index = 0;
  }

  nextU32(): number {
    if (this.index >= MT_N) this.twist();
    let y = this.state[this.index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** Snapshot for save/restore; `index` counts outputs consumed from the current block. */
  getState(): { state: Uint32Array; index: number } {
    return { state: this.state.slice(), index: this.index };
  }

  setState(s: { state: Uint32Array; index: number }): void {
    if (s.state.length !== MT_N || s.index < 0 || s.index > MT_N) {
      throw new Error('Mt19937.setState: invalid state');
    }
    this.state.set(s.state);
    this.index = s.index;
  }
}

// ---------------------------------------------------------------------------------------------
// float32 helpers

/**
 * Correctly rounded float32 fused multiply-add of float32 inputs. a*b is exact in double, but
 * rounding a*b+c to double and then to float can land on a float tie that the exact value does
 * not sit on; that case is detected and resolved with the TwoSum error term.
 */
export function fma32(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const r = f32(s);
  if (r === s) return r;
  // If s is exactly halfway between two floats, its mirror image about r is the other float.
  const g = 2 * s - r;
  if (f32(g) !== g) return r;
  const bb = s - p;
  const err = p - (s - bb) + (c - bb);
  if (err === 0) return r;
  return err > 0 === g > r ? g : r;
}

// Constants of avx_mathfun.h, rounded to float32 as the compiler does for the _PS256_CONST tables.
const SQRTHF = f32(0.707106781186547524);
const LOG_P0 = f32(7.0376836292e-2);
const LOG_P1 = f32(-1.151461031e-1);
const LOG_P2 = f32(1.167699874e-1);
const LOG_P3 = f32(-1.2420140846e-1);
const LOG_P4 = f32(1.4249322787e-1);
const LOG_P5 = f32(-1.6668057665e-1);
const LOG_P6 = f32(2.0000714765e-1);
const LOG_P7 = f32(-2.4999993993e-1);
const LOG_P8 = f32(3.3333331174e-1);
const LOG_Q1 = f32(-2.1219444e-4);
const LOG_Q2 = f32(0.693359375);
const MINUS_DP1 = f32(-0.78515625);
const MINUS_DP2 = f32(-2.4187564849853515625e-4);
const MINUS_DP3 = f32(-3.77489497744594108e-8);
const SINCOF_P0 = f32(-1.9515295891e-4);
const SINCOF_P1 = f32(8.3321608736e-3);
const SINCOF_P2 = f32(-1.6666654611e-1);
const COSCOF_P0 = f32(2.443315711809948e-5);
const COSCOF_P1 = f32(-1.388731625493765e-3);
const COSCOF_P2 = f32(4.166664568298827e-2);
const FOPI = f32(1.27323954473516);
// normal_fill_AVX2 broadcasts (float)(2 * pi as double).
const TWO_PI_F = f32(2 * Math.PI);

const bitsF32 = new Float32Array(1);
const bitsU32 = new Uint32Array(bitsF32.buffer);

/**
 * log256_ps for one lane, valid for the kernel's inputs: normal floats in (0, 1]. Not a general
 * log: the Cephes polynomial is only as accurate as its float32 evaluation, and the point is to
 * reproduce that evaluation, not to be accurate.
 */
function cephesLogf(v: number): number {
  bitsF32[0] = v;
  const bits = bitsU32[0]!;
  let e = (bits >>> 23) - 126; // exponent of the mantissa taken in [0.5, 1)
  bitsU32[0] = (bits & 0x807fffff) | 0x3f000000;
  let x = bitsF32[0]!;
  if (x < SQRTHF) {
    e -= 1;
    x = x - 1 + x; // exact: 2x - 1 fits in 24 bits
  } else {
    x = x - 1; // exact (Sterbenz)
  }
  const z = f32(x * x);
  let y = fma32(LOG_P0, x, LOG_P1);
  y = fma32(y, x, LOG_P2);
  y = fma32(y, x, LOG_P3);
  y = fma32(y, x, LOG_P4);
  y = fma32(y, x, LOG_P5);
  y = fma32(y, x, LOG_P6);
  y = fma32(y, x, LOG_P7);
  y = fma32(y, x, LOG_P8);
  y = f32(y * x);
  // y*z + e*q1: GCC fuses the first multiply (in source order) into the add.
  y = fma32(y, z, f32(e * LOG_Q1));
  y = f32(y - z * 0.5); // z*0.5 is exact, fused or not
  x = f32(x + y);
  return f32(x + e * LOG_Q2); // e*q2 is exact (q2 has 9 significant bits)
}

/**
 * sincos256_ps for one lane, for 0 <= x < 2*pi (the kernel only passes 2*pi*u). Writes
 * [sin, cos] into `out`.
 */
function cephesSinCosf(xIn: number, out: Float64Array): void {
  let x = Math.abs(xIn);
  const signSin = xIn < 0 ? -1 : 1;
  let j = Math.trunc(f32(x * FOPI));
  j = (j + 1) & ~1;
  const yj = j; // small integer, exact in float
  const sinSign = j & 4 ? -signSin : signSin;
  const cosSign = ~(j - 2) & 4 ? -1 : 1;
  const useSinPoly = (j & 2) === 0; // for the sine; the cosine takes the other polynomial
  // Extended-precision reduction x - j*pi/4 in three pieces, each product fused into the add;
  // j*DP1 and j*DP2 are exact (few significant bits), so only the DP3 step needs a real FMA.
  x = f32(x + yj * MINUS_DP1);
  x = f32(x + yj * MINUS_DP2);
  x = fma32(yj, MINUS_DP3, x);
  const z = f32(x * x);

  let yc = fma32(COSCOF_P0, z, COSCOF_P1);
  yc = fma32(yc, z, COSCOF_P2);
  yc = f32(yc * z);
  // y*z - z*0.5: as in the log, the earlier multiply is the one fused.
  yc = fma32(yc, z, -f32(z * 0.5));
  yc = f32(yc + 1);

  let ys = fma32(SINCOF_P0, z, SINCOF_P1);
  ys = fma32(ys, z, SINCOF_P2);
  ys = f32(ys * z);
  ys = fma32(ys, x, x);

  if (useSinPoly) {
    out[0] = sinSign * ys;
    out[1] = cosSign * yc;
  } else {
    out[0] = sinSign * yc;
    out[1] = cosSign * ys;
  }
}

const sincosTmp = new Float64Array(2);

/** normal_fill_16_AVX2 on data[off .. off+16), in place. */
function normalFill16Avx2(data: Float32Array, off: number, mean: number, std: number): void {
  for (let j = 0; j < 8; j++) {
    const u1 = f32(1 - data[off + j]!);
    const u2 = data[off + j + 8]!;
    const radius = f32(Math.sqrt(f32(-2 * cephesLogf(u1))));
    cephesSinCosf(f32(TWO_PI_F * u2), sincosTmp);
    const n1 = f32(radius * sincosTmp[1]!);
    const n2 = f32(radius * sincosTmp[0]!);
    data[off + j] = fma32(n1, std, mean);
    data[off + j + 8] = fma32(n2, std, mean);
  }
}

/**
 * The non-vectorised normal_fill_16 (ATEN_CPU_CAPABILITY=default) with libm transcendentals.
 * Kept for comparison with machines that lack AVX2; libm's float functions are approximated by
 * correctly rounding the double result, which matches glibc except in rare near-tie cases.
 */
function normalFill16Scalar(data: Float32Array, off: number, mean: number, std: number): void {
  for (let j = 0; j < 8; j++) {
    const u1 = f32(1 - data[off + j]!);
    const u2 = data[off + j + 8]!;
    const radius = f32(Math.sqrt(f32(-2 * f32(Math.log(u1)))));
    // `2.0f * c10::pi<double> * u2` is evaluated in double, then stored as float.
    const theta = f32(2 * Math.PI * u2);
    data[off + j] = f32(f32(f32(radius * f32(Math.cos(theta))) * std) + mean);
    data[off + j + 8] = f32(f32(f32(radius * f32(Math.sin(theta))) * std) + mean);
  }
}

// ---------------------------------------------------------------------------------------------
// generator

export type Seed = number | bigint;
export type NormalKernel = 'avx2' | 'scalar';

const TWO_POW_M24 = 2 ** -24;
const TWO_POW_M53 = 2 ** -53;
const TWO_POW_32 = 2 ** 32;

/** The seed torch stores (uint64; negative seeds wrap as two's complement, like manual_seed). */
export function normalizeSeed(seed: Seed): bigint {
  let s: bigint;
  if (typeof seed === 'bigint') {
    s = seed;
  } else {
    if (!Number.isSafeInteger(seed)) {
      throw new RangeError(`seed must be a safe integer (use a bigint for larger seeds): ${seed}`);
    }
    s = BigInt(seed);
  }
  if (s < -(1n << 63n) || s >= 1n << 64n) {
    throw new RangeError(`seed out of range [-2^63, 2^64): ${s}`);
  }
  return BigInt.asUintN(64, s);
}

export interface TorchGeneratorState {
  seed: bigint;
  mt: { state: Uint32Array; index: number };
  nextDoubleNormal: number | null;
}

/**
 * A `torch.Generator()` on CPU. `randn` draws like `torch.randn(numel, generator=g)` into a
 * float32 buffer; reshape is free because torch fills contiguous tensors in flat order.
 */
export class TorchGenerator {
  private readonly mt = new Mt19937();
  private seedValue = 0n;
  // torch's next_double_normal_sample; the float twin is never filled by CPU randn.
  private nextDoubleNormal: number | null = null;
  kernel: NormalKernel;

  constructor(seed: Seed = 67280421310721n, kernel: NormalKernel = 'avx2') {
    this.kernel = kernel;
    this.manualSeed(seed);
  }

  manualSeed(seed: Seed): this {
    this.seedValue = normalizeSeed(seed);
    this.mt.seed(Number(this.seedValue & 0xffffffffn));
    this.nextDoubleNormal = null;
    return this;
  }

  initialSeed(): bigint {
    return this.seedValue;
  }

  /** generator->random(): one 32-bit draw. */
  random(): number {
    return this.mt.nextU32();
  }

  /** generator->random64(): two draws, the first one being the high word. */
  random64(): bigint {
    const hi = this.mt.nextU32();
    const lo = this.mt.nextU32();
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** uniform_real_distribution<float>(0, 1): the low 24 bits of one draw. */
  uniformFloat(): number {
    return (this.mt.nextU32() & 0xffffff) * TWO_POW_M24;
  }

  /** uniform_real_distribution<double>(0, 1): the low 53 bits of random64(). */
  uniformDouble(): number {
    const hi = this.mt.nextU32();
    const lo = this.mt.nextU32();
    return ((hi & 0x1fffff) * TWO_POW_32 + lo) * TWO_POW_M53;
  }

  /** at::normal_distribution<double>: Box-Muller in double, second value cached. */
  normalDouble(mean = 0, std = 1): number {
    if (this.nextDoubleNormal !== null) {
      const cached = this.nextDoubleNormal;
      this.nextDoubleNormal = null;
      return cached * std + mean;
    }
    const u1 = this.uniformDouble();
    const u2 = this.uniformDouble();
    // torch 1.13 writes log(1 - u2); newer releases use log1p(-u2), same float32 result.
    const r = Math.sqrt(-2 * Math.log(1 - u2));
    const theta = 2 * Math.PI * u1;
    this.nextDoubleNormal = r * Math.sin(theta);
    return r * Math.cos(theta) * std + mean;
  }

  /** `tensor.normal_(mean, std, generator=g)` for a contiguous float32 tensor of out.length. */
  normalFill(out: Float32Array, mean = 0, std = 1): Float32Array {
    const n = out.length;
    if (n < 16) {
      for (let i = 0; i < n; i++) out[i] = f32(this.normalDouble(mean, std));
      return out;
    }
    const m = f32(mean);
    const s = f32(std);
    const block = this.kernel === 'avx2' ? normalFill16Avx2 : normalFill16Scalar;
    for (let i = 0; i < n; i++) out[i] = (this.mt.nextU32() & 0xffffff) * TWO_POW_M24;
    for (let i = 0; i + 16 <= n; i += 16) block(out, i, m, s);
    if (n % 16 !== 0) {
      const base = n - 16;
      for (let i = 0; i < 16; i++) out[base + i] = (this.mt.nextU32() & 0xffffff) * TWO_POW_M24;
      block(out, base, m, s);
    }
    return out;
  }

  /** torch.randn(numel, generator=g) as float32. */
  randn(numel: number): Float32Array {
    if (!Number.isSafeInteger(numel) || numel < 0) {
      throw new RangeError(`randn: numel must be a non-negative integer, got ${numel}`);
    }
    return this.normalFill(new Float32Array(numel));
  }

  /** torch.randn(shape, generator=g), flat in row-major order. */
  randnShape(shape: readonly number[]): Float32Array {
    return this.randn(numelOf(shape));
  }

  getState(): TorchGeneratorState {
    return { seed: this.seedValue, mt: this.mt.getState(), nextDoubleNormal: this.nextDoubleNormal };
  }

  setState(state: TorchGeneratorState): void {
    this.mt.setState(state.mt);
    this.seedValue = state.seed;
    this.nextDoubleNormal = state.nextDoubleNormal;
  }

  clone(): TorchGenerator {
    const g = new TorchGenerator(0, this.kernel);
    g.setState(this.getState());
    return g;
  }
}

function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new RangeError(`bad dimension ${d} in shape`);
    n *= d;
  }
  return n;
}

/** `torch.manual_seed(seed); torch.randn(shape)`: ComfyUI's prepare_noise for one latent. */
export function randnLike(seed: Seed, shape: readonly number[]): Float32Array {
  return new TorchGenerator(seed).randnShape(shape);
}
