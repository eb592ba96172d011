import type { Graph, Node, ElemType } from './ir.js';
import { evaluateAutodiffOp } from './reference-grad.js';

/**
 * A float64 interpreter of the IR. It is the oracle that the ONNX lowering and (later) autodiff are checked
 * against, so every op is written the obvious way, loop by loop: clarity over speed. Shapes come from the
 * data actually fed, never from the IR's symbolic shapes.
 */

export interface RefTensor { data: Float64Array; dims: number[] }
export type RefFeed = { data: Float64Array | Float32Array | Int32Array | BigInt64Array | Uint8Array; dims: readonly number[] };

export function evaluateReference(
  graph: Graph,
  feeds: Record<string, RefFeed>,
  weights?: ReadonlyMap<string, Float64Array | Float32Array>,
): Record<string, RefTensor> {
  const env = new Map<number, RefTensor>();
  for (const inp of graph.inputs) {
    const f = feeds[inp.name];
    if (!f) throw new Error(`reference: missing feed "${inp.name}"`);
    env.set(inp.value, { data: toF64(f.data), dims: [...f.dims] });
  }
  for (const c of graph.consts) env.set(c.value, { data: toF64(c.data), dims: graph.values[c.value]!.shape as number[] });
  for (const w of graph.weights) {
    const dims = graph.values[w.value]!.shape;
    if (!dims.every((d) => typeof d === 'number')) throw new Error(`reference: weight "${w.name}" has a symbolic shape`);
    const data = toF64(weights?.get(w.name) ?? w.source.load());
    if (data.length !== size(dims as number[])) throw new Error(`reference: weight "${w.name}" has ${data.length} values for [${dims}]`);
    env.set(w.value, { data, dims: dims as number[] });
  }
  for (const n of graph.nodes) {
    const ins = n.inputs.map((id) => {
      const t = env.get(id);
      if (!t) throw new Error(`reference: value ${id} used by ${n.op} before it is defined`);
      return t;
    });
    env.set(n.outputs[0]!, evaluateNode(n, ins, graph.values[n.outputs[0]!]!.type));
  }
  const out: Record<string, RefTensor> = {};
  for (const o of graph.outputs) out[o.name] = env.get(o.value)!;
  return out;
}

const toF64 = (d: RefFeed['data']): Float64Array => (d instanceof BigInt64Array ? Float64Array.from(d, Number) : Float64Array.from(d));
export const size = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

/** Row-major element strides of a shape. */
export function strides(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length);
  let acc = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= dims[i]!;
  }
  return s;
}

/** Calls fn with the multi-index of every element of `dims`, in row-major order. */
function forEachIndex(dims: readonly number[], fn: (idx: number[], flat: number) => void): void {
  const n = size(dims);
  const idx = new Array<number>(dims.length).fill(0);
  for (let flat = 0; flat < n; flat++) {
    fn(idx, flat);
    for (let d = dims.length - 1; d >= 0; d--) {
      if (++idx[d]! < dims[d]!) break;
      idx[d] = 0;
    }
  }
}

function broadcastDims(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  return Array.from({ length: n }, (_, i) => {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`reference: [${a}] and [${b}] do not broadcast`);
    return da === 1 ? db : da;
  });
}

/** Flat offset into a tensor of `dims` for an index of a (possibly higher-rank) broadcast result. */
function broadcastOffset(idx: readonly number[], dims: readonly number[], st: readonly number[]): number {
  const lead = idx.length - dims.length;
  let off = 0;
  for (let d = 0; d < dims.length; d++) if (dims[d] !== 1) off += idx[lead + d]! * st[d]!;
  return off;
}

function binary(a: RefTensor, b: RefTensor, f: (x: number, y: number) => number): RefTensor {
  const dims = broadcastDims(a.dims, b.dims);
  const data = new Float64Array(size(dims));
  const sa = strides(a.dims);
  const sb = strides(b.dims);
  forEachIndex(dims, (idx, i) => {
    data[i] = f(a.data[broadcastOffset(idx, a.dims, sa)]!, b.data[broadcastOffset(idx, b.dims, sb)]!);
  });
  return { data, dims };
}

const map = (x: RefTensor, f: (v: number) => number): RefTensor => ({ data: x.data.map(f), dims: [...x.dims] });
const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/** erf via A&S 7.1.6: a series of positive terms, so no cancellation; |x| > 6 is ±1 to double precision. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax > 6) return Math.sign(x);
  let term = ax;
  let sum = ax;
  for (let n = 1; term > 1e-17 * sum; n++) {
    term *= (2 * ax * ax) / (2 * n + 1);
    sum += term;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-ax * ax) * sum;
}

const UNARY: Partial<Record<Node['op'], (v: number) => number>> = {
  neg: (v) => -v, acos: Math.acos, exp: Math.exp, log: Math.log, sqrt: Math.sqrt, sin: Math.sin, cos: Math.cos, tanh: Math.tanh,
  relu: (v) => (v > 0 ? v : 0), sigmoid, silu: (v) => v * sigmoid(v), quick_gelu: (v) => v * sigmoid(1.702 * v),
};

const isInt = (t: ElemType) => t === 'int32' || t === 'int64';

/** Evaluates one node on concrete inputs. `outType` matters only for integer division and casts. */
export function evaluateNode(n: Node, ins: RefTensor[], outType: ElemType): RefTensor {
  const [x, y] = ins as [RefTensor, RefTensor];
  const un = UNARY[n.op];
  if (un) return map(x, un);
  switch (n.op) {
    case 'add': return binary(x, y, (a, b) => a + b);
    case 'sub': return binary(x, y, (a, b) => a - b);
    case 'mul': return binary(x, y, (a, b) => a * b);
    case 'div': return binary(x, y, isInt(outType) ? (a, b) => Math.trunc(a / b) : (a, b) => a / b);
    case 'pow': return binary(x, y, Math.pow);
    case 'max': return binary(x, y, Math.max);
    case 'gelu':
      if (n.attrs.approximate === 'tanh') {
        const k = Math.sqrt(2 / Math.PI);
        return map(x, (v) => 0.5 * v * (1 + Math.tanh(k * (v + 0.044715 * v * v * v))));
      }
      return map(x, (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
    case 'matmul': return matmul(x, y);
    case 'linear': {
      const [outF, inF] = y.dims as [number, number];
      const wt = transpose({ data: y.data, dims: [outF, inF] }, [1, 0]);
      const r = matmul(x, wt);
      return ins[2] ? binary(r, ins[2], (a, b) => a + b) : r;
    }
    case 'conv2d': return conv2d(x, y, ins[2], n.attrs as Record<string, number>);
    case 'group_norm': return groupNorm(x, y, ins[2]!, n.attrs.groups as number, n.attrs.eps as number);
    case 'layer_norm': return layerNorm(x, y, ins[2]!, n.attrs.eps as number);
    case 'softmax': return softmax(x, axisOf(n.attrs.axis as number, x.dims.length));
    case 'attention': return attention(x, y, ins[2]!, n.attrs.heads as number, Boolean(n.attrs.causal));
    case 'upsample_nearest': {
      const s = n.attrs.scale as number;
      const [, , h, w] = x.dims as [number, number, number, number];
      return resizeNearest(x, Math.floor(h * s), Math.floor(w * s), (o, inD) => Math.min(Math.floor(o / s), inD - 1));
    }
    case 'upsample_nearest_like': {
      const [, , oh, ow] = y.dims as [number, number, number, number];
      // Integer arithmetic: floor(o * in / out) exactly, as PyTorch's nearest resize intends.
      return resizeNearest(x, oh, ow, (o, inD, outD) => Math.floor((o * inD) / outD));
    }
    case 'concat': return concat(ins, axisOf(n.attrs.axis as number, x.dims.length));
    case 'slice': return slice(x, n.attrs.axis as number, n.attrs.start as number, n.attrs.end as number);
    case 'reshape': return reshape(x, n.attrs.shape as number[]);
    case 'reshape_like': return reshape(x, y.dims);
    case 'reshape_to': return reshape(x, Array.from(y.data, Number));
    case 'where': return where(x, y, ins[2]!);
    case 'reduce_max': return reduceMax(x, n.attrs.axes as number[], Boolean(n.attrs.keepdims));
    case 'transpose': return transpose(x, n.attrs.perm as number[]);
    case 'reduce_mean':
    case 'reduce_sum': return reduce(x, n.attrs.axes as number[], Boolean(n.attrs.keepdims), n.op === 'reduce_mean');
    case 'cast': {
      const to = n.attrs.to as ElemType;
      if (to === 'bool') return map(x, (v) => (v !== 0 ? 1 : 0));
      return isInt(to) ? map(x, Math.trunc) : map(x, (v) => v);
    }
    case 'gather': return gather(x, y, axisOf(n.attrs.axis as number, x.dims.length));
    default: {
      const r = evaluateAutodiffOp(n, ins);
      if (r) return r;
      throw new Error(`reference: no interpreter for op "${n.op}"`);
    }
  }
}

const axisOf = (a: number, rank: number) => (a < 0 ? a + rank : a);

function matmul(a: RefTensor, b: RefTensor): RefTensor {
  const [m, k] = a.dims.slice(-2) as [number, number];
  const [k2, nn] = b.dims.slice(-2) as [number, number];
  if (k !== k2) throw new Error(`reference: matmul [${a.dims}] x [${b.dims}]`);
  const [ba, bb] = [a.dims.slice(0, -2), b.dims.slice(0, -2)];
  const batch = broadcastDims(ba, bb);
  const dims = [...batch, m, nn];
  const data = new Float64Array(size(dims));
  const [sa, sb] = [strides(ba), strides(bb)];
  forEachIndex(batch, (idx, bi) => {
    const oa = broadcastOffset(idx, ba, sa) * m * k;
    const ob = broadcastOffset(idx, bb, sb) * k * nn;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < nn; j++) {
        let s = 0;
        for (let t = 0; t < k; t++) s += a.data[oa + i * k + t]! * b.data[ob + t * nn + j]!;
        data[bi * m * nn + i * nn + j] = s;
      }
  });
  return { data, dims };
}

function conv2d(x: RefTensor, w: RefTensor, b: RefTensor | undefined, o: Record<string, number>): RefTensor {
  const { stride: s, padding: p, dilation: d, groups: g } = o as Record<'stride' | 'padding' | 'dilation' | 'groups', number>;
  const [N, C, H, W] = x.dims as [number, number, number, number];
  const [O, Cg, KH, KW] = w.dims as [number, number, number, number];
  if (Cg * g !== C) throw new Error(`reference: conv2d input channels ${C} vs weight [${w.dims}] groups ${g}`);
  const [OH, OW] = [H, W].map((D, i) => Math.floor((D + 2 * p - d * ([KH, KW][i]! - 1) - 1) / s) + 1) as [number, number];
  const Og = O / g;
  const data = new Float64Array(N * O * OH * OW);
  for (let n = 0; n < N; n++)
    for (let oc = 0; oc < O; oc++) {
      const grp = Math.floor(oc / Og);
      for (let oy = 0; oy < OH; oy++)
        for (let ox = 0; ox < OW; ox++) {
          let acc = b ? b.data[oc]! : 0;
          for (let ic = 0; ic < Cg; ic++) {
            const c = grp * Cg + ic;
            for (let ky = 0; ky < KH; ky++) {
              const iy = oy * s - p + ky * d;
              if (iy < 0 || iy >= H) continue;
              for (let kx = 0; kx < KW; kx++) {
                const ix = ox * s - p + kx * d;
                if (ix < 0 || ix >= W) continue;
                acc += x.data[((n * C + c) * H + iy) * W + ix]! * w.data[((oc * Cg + ic) * KH + ky) * KW + kx]!;
              }
            }
          }
          data[((n * O + oc) * OH + oy) * OW + ox] = acc;
        }
    }
  return { data, dims: [N, O, OH, OW] };
}

/** Normalises `count` contiguous runs of `len` values each, with biased variance. */
function normalizeRuns(src: Float64Array, count: number, len: number, eps: number): Float64Array {
  const out = new Float64Array(src.length);
  for (let r = 0; r < count; r++) {
    const run = src.subarray(r * len, (r + 1) * len);
    const mean = run.reduce((a, v) => a + v, 0) / len;
    const variance = run.reduce((a, v) => a + (v - mean) ** 2, 0) / len;
    const inv = 1 / Math.sqrt(variance + eps);
    for (let i = 0; i < len; i++) out[r * len + i] = (run[i]! - mean) * inv;
  }
  return out;
}

function groupNorm(x: RefTensor, w: RefTensor, b: RefTensor, groups: number, eps: number): RefTensor {
  const [N, C] = x.dims as [number, number];
  const spatial = size(x.dims.slice(2));
  const normed = normalizeRuns(x.data, N * groups, (C / groups) * spatial, eps);
  const data = new Float64Array(normed.length);
  for (let i = 0; i < normed.length; i++) {
    const c = Math.floor(i / spatial) % C;
    data[i] = normed[i]! * w.data[c]! + b.data[c]!;
  }
  return { data, dims: [...x.dims] };
}

function layerNorm(x: RefTensor, w: RefTensor, b: RefTensor, eps: number): RefTensor {
  const D = x.dims[x.dims.length - 1]!;
  const normed = normalizeRuns(x.data, x.data.length / D, D, eps);
  return { data: normed.map((v, i) => v * w.data[i % D]! + b.data[i % D]!), dims: [...x.dims] };
}

function softmax(x: RefTensor, axis: number): RefTensor {
  const [len, inner, outer] = [x.dims[axis]!, size(x.dims.slice(axis + 1)), size(x.dims.slice(0, axis))];
  const data = new Float64Array(x.data.length);
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < inner; i++) {
      const at = (j: number) => (o * len + j) * inner + i;
      let m = -Infinity;
      for (let j = 0; j < len; j++) m = Math.max(m, x.data[at(j)]!);
      let s = 0;
      for (let j = 0; j < len; j++) s += Math.exp(x.data[at(j)]! - m);
      for (let j = 0; j < len; j++) data[at(j)] = Math.exp(x.data[at(j)]! - m) / s;
    }
  return { data, dims: [...x.dims] };
}

function attention(q: RefTensor, k: RefTensor, v: RefTensor, heads: number, causal: boolean): RefTensor {
  const [B, S, C] = q.dims as [number, number, number];
  const [L, Cv] = [k.dims[1]!, v.dims[2]!];
  const [dh, dv] = [C / heads, Cv / heads];
  const scale = dh ** -0.5;
  const data = new Float64Array(B * S * Cv);
  const scores = new Float64Array(L);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < S; i++) {
        let m = -Infinity;
        for (let j = 0; j < L; j++) {
          let s = 0;
          for (let t = 0; t < dh; t++) s += q.data[(b * S + i) * C + h * dh + t]! * k.data[(b * L + j) * C + h * dh + t]!;
          scores[j] = causal && j > i ? -Infinity : s * scale;
          m = Math.max(m, scores[j]!);
        }
        let z = 0;
        for (let j = 0; j < L; j++) z += (scores[j] = Math.exp(scores[j]! - m));
        for (let t = 0; t < dv; t++) {
          let acc = 0;
          for (let j = 0; j < L; j++) acc += scores[j]! * v.data[(b * L + j) * Cv + h * dv + t]!;
          data[(b * S + i) * Cv + h * dv + t] = acc / z;
        }
      }
  return { data, dims: [B, S, Cv] };
}

function resizeNearest(x: RefTensor, OH: number, OW: number, src: (o: number, inD: number, outD: number) => number): RefTensor {
  const [N, C, H, W] = x.dims as [number, number, number, number];
  const data = new Float64Array(N * C * OH * OW);
  for (let nc = 0; nc < N * C; nc++)
    for (let oy = 0; oy < OH; oy++) {
      const iy = src(oy, H, OH);
      for (let ox = 0; ox < OW; ox++) data[(nc * OH + oy) * OW + ox] = x.data[(nc * H + iy) * W + src(ox, W, OW)]!;
    }
  return { data, dims: [N, C, OH, OW] };
}

function concat(xs: RefTensor[], axis: number): RefTensor {
  const dims = [...xs[0]!.dims];
  dims[axis] = xs.reduce((s, t) => s + t.dims[axis]!, 0);
  const outer = size(dims.slice(0, axis));
  const data = new Float64Array(size(dims));
  let off = 0;
  for (let o = 0; o < outer; o++)
    for (const t of xs) {
      const chunk = size(t.dims.slice(axis));
      data.set(t.data.subarray(o * chunk, (o + 1) * chunk), off);
      off += chunk;
    }
  return { data, dims };
}

function slice(x: RefTensor, axis: number, start: number, end: number): RefTensor {
  const d = x.dims[axis]!;
  const clamp = (i: number) => Math.min(Math.max(i < 0 ? i + d : i, 0), d);
  const s = clamp(start);
  const len = Math.max(0, clamp(end) - s);
  const [outer, inner] = [size(x.dims.slice(0, axis)), size(x.dims.slice(axis + 1))];
  const data = new Float64Array(outer * len * inner);
  for (let o = 0; o < outer; o++) data.set(x.data.subarray((o * d + s) * inner, (o * d + s + len) * inner), o * len * inner);
  return { data, dims: x.dims.map((v, i) => (i === axis ? len : v)) };
}

function reshape(x: RefTensor, target: number[]): RefTensor {
  const dims = target.map((t, i) => (t === 0 ? x.dims[i]! : t));
  const at = dims.indexOf(-1);
  if (at >= 0) dims[at] = x.data.length / size(dims.filter((_, i) => i !== at));
  if (size(dims) !== x.data.length || !dims.every(Number.isInteger)) throw new Error(`reference: cannot reshape [${x.dims}] to [${target}]`);
  return { data: x.data.slice(), dims };
}

export function transpose(x: RefTensor, perm: number[]): RefTensor {
  const dims = perm.map((p) => x.dims[p]!);
  const st = strides(x.dims);
  const data = new Float64Array(x.data.length);
  forEachIndex(dims, (idx, i) => {
    let off = 0;
    for (let a = 0; a < perm.length; a++) off += idx[a]! * st[perm[a]!]!;
    data[i] = x.data[off]!;
  });
  return { data, dims };
}

function reduce(x: RefTensor, axes: number[], keepdims: boolean, mean: boolean): RefTensor {
  const rank = x.dims.length;
  // ONNX: an empty axes list reduces over everything.
  const ax = axes.length ? axes.map((a) => axisOf(a, rank)) : x.dims.map((_, i) => i);
  const kept = x.dims.map((d, i) => (ax.includes(i) ? 1 : d));
  const ks = strides(kept);
  const data = new Float64Array(size(kept));
  forEachIndex(x.dims, (idx, i) => {
    let off = 0;
    for (let a = 0; a < rank; a++) if (!ax.includes(a)) off += idx[a]! * ks[a]!;
    data[off] += x.data[i]!;
  });
  const count = x.data.length / data.length;
  return { data: mean ? data.map((v) => v / count) : data, dims: keepdims ? kept : x.dims.filter((_, i) => !ax.includes(i)) };
}

function where(c: RefTensor, a: RefTensor, b: RefTensor): RefTensor {
  const dims = broadcastDims(c.dims, broadcastDims(a.dims, b.dims));
  const data = new Float64Array(size(dims));
  const [sc, sa, sb] = [strides(c.dims), strides(a.dims), strides(b.dims)];
  forEachIndex(dims, (idx, i) => {
    const pick = c.data[broadcastOffset(idx, c.dims, sc)]! !== 0;
    data[i] = pick ? a.data[broadcastOffset(idx, a.dims, sa)]! : b.data[broadcastOffset(idx, b.dims, sb)]!;
  });
  return { data, dims };
}

function reduceMax(x: RefTensor, axes: number[], keepdims: boolean): RefTensor {
  const rank = x.dims.length;
  const ax = axes.length ? axes.map((a) => axisOf(a, rank)) : x.dims.map((_, i) => i);
  const kept = x.dims.map((d, i) => (ax.includes(i) ? 1 : d));
  const ks = strides(kept);
  const data = new Float64Array(size(kept)).fill(-Infinity);
  forEachIndex(x.dims, (idx, i) => {
    let off = 0;
    for (let a = 0; a < rank; a++) if (!ax.includes(a)) off += idx[a]! * ks[a]!;
    if (x.data[i]! > data[off]!) data[off] = x.data[i]!;
  });
  return { data, dims: keepdims ? kept : x.dims.filter((_, i) => !ax.includes(i)) };
}

function gather(x: RefTensor, indices: RefTensor, axis: number): RefTensor {
  const [d, outer, inner] = [x.dims[axis]!, size(x.dims.slice(0, axis)), size(x.dims.slice(axis + 1))];
  const dims = [...x.dims.slice(0, axis), ...indices.dims, ...x.dims.slice(axis + 1)];
  const data = new Float64Array(size(dims));
  const ni = indices.data.length;
  for (let o = 0; o < outer; o++)
    for (let j = 0; j < ni; j++) {
      let k = indices.data[j]!;
      if (k < 0) k += d;
      if (!(k >= 0 && k < d)) throw new Error(`reference: gather index ${indices.data[j]} out of range for dim ${d}`);
      data.set(x.data.subarray((o * d + k) * inner, (o * d + k + 1) * inner), (o * ni + j) * inner);
    }
  return { data, dims };
}
