import type { Node } from './ir.js';
import { erf, size, strides, type RefTensor } from './reference.js';

/**
 * Float64 semantics of the ops that autodiff adds to the IR (comparison, erf and the gradient helpers). Kept
 * apart from reference.ts so the forward interpreter stays readable; each op is written as the plain
 * scatter/gather loop its name describes, independent of the ONNX lowering, so it can serve as the oracle.
 */
export function evaluateAutodiffOp(n: Node, ins: RefTensor[]): RefTensor | undefined {
  const [a, b] = ins as [RefTensor, RefTensor];
  const at = n.attrs as Record<string, number>;
  switch (n.op) {
    case 'erf': return { data: a.data.map(erf), dims: [...a.dims] };
    case 'greater': return broadcast2(a, b, (x, y) => (x > y ? 1 : 0));
    case 'conv2d_grad_input': return convGradInput(a, b, ins[2]!.dims, at);
    case 'conv2d_grad_weight': return convGradWeight(a, b, n.attrs.kernel as number[], at);
    case 'attention_probs': return attentionProbs(a, b, at.heads!, Boolean(n.attrs.causal));
    case 'upsample_nearest_grad': return upsampleGrad(a, b.dims);
    case 'concat_grad': {
      const axis = at.axis!;
      const parts = ins.slice(1);
      const start = parts.slice(0, -1).reduce((s, p) => s + p.dims[axis]!, 0);
      return sliceRange(a, axis, start, parts[parts.length - 1]!.dims[axis]!);
    }
    case 'slice_grad': return sliceGrad(a, b.dims, at.axis!, at.start!, at.end!);
    case 'reduce_grad':
      // keepdims does not change dy's element layout, only its rank.
      return reduceGrad(a, b.dims, n.attrs.axes as number[], Boolean(n.attrs.mean));
    default: return undefined;
  }
}

/** Multi-index of flat position `flat` in `dims`. */
function unravel(flat: number, dims: readonly number[]): number[] {
  const idx = new Array<number>(dims.length);
  for (let d = dims.length - 1; d >= 0; d--) {
    idx[d] = flat % dims[d]!;
    flat = Math.floor(flat / dims[d]!);
  }
  return idx;
}

function broadcast2(a: RefTensor, b: RefTensor, f: (x: number, y: number) => number): RefTensor {
  const r = Math.max(a.dims.length, b.dims.length);
  const pad = (d: number[]) => [...new Array<number>(r - d.length).fill(1), ...d];
  const da = pad(a.dims);
  const db = pad(b.dims);
  const dims = da.map((x, i) => (x === 1 ? db[i]! : x));
  const sa = strides(da);
  const sb = strides(db);
  const data = new Float64Array(size(dims));
  for (let i = 0; i < data.length; i++) {
    const idx = unravel(i, dims);
    let oa = 0;
    let ob = 0;
    for (let d = 0; d < r; d++) {
      if (da[d] !== 1) oa += idx[d]! * sa[d]!;
      if (db[d] !== 1) ob += idx[d]! * sb[d]!;
    }
    data[i] = f(a.data[oa]!, b.data[ob]!);
  }
  return { data, dims };
}

/** Visits every (output position, weight tap, input position) triple of a conv2d, skipping padding. */
function forEachConvTap(
  xDims: readonly number[],
  dyDims: readonly number[],
  wDims: readonly number[],
  o: Record<string, number>,
  fn: (xi: number, wi: number, yi: number) => void,
): void {
  const { stride: s, padding: p, dilation: d, groups: g } = o as { stride: number; padding: number; dilation: number; groups: number };
  const [N, C, H, W] = xDims as [number, number, number, number];
  const [, O, OH, OW] = dyDims as [number, number, number, number];
  const [, Cg, KH, KW] = wDims as [number, number, number, number];
  const Og = O / g;
  for (let n = 0; n < N; n++)
    for (let oc = 0; oc < O; oc++) {
      const grp = Math.floor(oc / Og);
      for (let oy = 0; oy < OH; oy++)
        for (let ox = 0; ox < OW; ox++) {
          const yi = ((n * O + oc) * OH + oy) * OW + ox;
          for (let ic = 0; ic < Cg; ic++)
            for (let ky = 0; ky < KH; ky++) {
              const iy = oy * s - p + ky * d;
              if (iy < 0 || iy >= H) continue;
              for (let kx = 0; kx < KW; kx++) {
                const ix = ox * s - p + kx * d;
                if (ix < 0 || ix >= W) continue;
                fn(((n * C + grp * Cg + ic) * H + iy) * W + ix, ((oc * Cg + ic) * KH + ky) * KW + kx, yi);
              }
            }
        }
    }
}

function convGradInput(dy: RefTensor, w: RefTensor, ref: readonly number[], o: Record<string, number>): RefTensor {
  const dims = [ref[0]!, w.dims[1]! * o.groups!, ref[2]!, ref[3]!];
  const data = new Float64Array(size(dims));
  forEachConvTap(dims, dy.dims, w.dims, o, (xi, wi, yi) => (data[xi] += dy.data[yi]! * w.data[wi]!));
  return { data, dims };
}

function convGradWeight(x: RefTensor, dy: RefTensor, kernel: number[], o: Record<string, number>): RefTensor {
  const dims = [dy.dims[1]!, x.dims[1]! / o.groups!, kernel[0]!, kernel[1]!];
  const data = new Float64Array(size(dims));
  forEachConvTap(x.dims, dy.dims, dims, o, (xi, wi, yi) => (data[wi] += dy.data[yi]! * x.data[xi]!));
  return { data, dims };
}

function attentionProbs(q: RefTensor, k: RefTensor, heads: number, causal: boolean): RefTensor {
  const [B, S, C] = q.dims as [number, number, number];
  const L = k.dims[1]!;
  const dh = C / heads;
  const scale = dh ** -0.5;
  const data = new Float64Array(B * heads * S * L);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < S; i++) {
        const row = ((b * heads + h) * S + i) * L;
        let m = -Infinity;
        for (let j = 0; j < L; j++) {
          let s = 0;
          for (let t = 0; t < dh; t++) s += q.data[(b * S + i) * C + h * dh + t]! * k.data[(b * L + j) * C + h * dh + t]!;
          data[row + j] = causal && j > i ? -Infinity : s * scale;
          m = Math.max(m, data[row + j]!);
        }
        let z = 0;
        for (let j = 0; j < L; j++) z += data[row + j] = Math.exp(data[row + j]! - m);
        for (let j = 0; j < L; j++) data[row + j] /= z;
      }
  return { data, dims: [B, heads, S, L] };
}

/** Each output pixel of a nearest resize copies source floor(o * in / out); the gradient sums those copies back. */
function upsampleGrad(dy: RefTensor, ref: readonly number[]): RefTensor {
  const [N, C, OH, OW] = dy.dims as [number, number, number, number];
  const [H, W] = [ref[2]!, ref[3]!];
  const data = new Float64Array(N * C * H * W);
  for (let nc = 0; nc < N * C; nc++)
    for (let oy = 0; oy < OH; oy++) {
      const iy = Math.floor((oy * H) / OH);
      for (let ox = 0; ox < OW; ox++) data[(nc * H + iy) * W + Math.floor((ox * W) / OW)] += dy.data[(nc * OH + oy) * OW + ox]!;
    }
  return { data, dims: [N, C, H, W] };
}

function sliceRange(x: RefTensor, axis: number, start: number, len: number): RefTensor {
  const dims = [...x.dims];
  dims[axis] = len;
  const inner = size(x.dims.slice(axis + 1));
  const outer = size(x.dims.slice(0, axis));
  const data = new Float64Array(size(dims));
  for (let o = 0; o < outer; o++) {
    const src = (o * x.dims[axis]! + start) * inner;
    data.set(x.data.subarray(src, src + len * inner), o * len * inner);
  }
  return { data, dims };
}

/** Places dy where slice(ref, axis, start, end) read from, with the same index clamping as slice. */
function sliceGrad(dy: RefTensor, ref: readonly number[], axis: number, start: number, end: number): RefTensor {
  const d = ref[axis]!;
  const clamp = (i: number) => Math.min(Math.max(i < 0 ? i + d : i, 0), d);
  const s = clamp(start);
  const len = Math.max(0, clamp(end) - s);
  if (len !== dy.dims[axis]) throw new Error(`reference: slice_grad got ${dy.dims[axis]} rows for a slice of ${len}`);
  const inner = size(ref.slice(axis + 1));
  const outer = size(ref.slice(0, axis));
  const data = new Float64Array(size(ref));
  for (let o = 0; o < outer; o++) data.set(dy.data.subarray(o * len * inner, (o + 1) * len * inner), (o * d + s) * inner);
  return { data, dims: [...ref] };
}

function reduceGrad(dy: RefTensor, ref: readonly number[], axes: number[], mean: boolean): RefTensor {
  const rank = ref.length;
  const ax = axes.length ? axes.map((a) => (a < 0 ? a + rank : a)) : ref.map((_, i) => i);
  const kept = ref.map((d, i) => (ax.includes(i) ? 1 : d));
  if (size(kept) !== dy.data.length) throw new Error(`reference: reduce_grad of [${dy.dims}] onto [${ref}]`);
  const ks = strides(kept);
  const count = size(ref) / size(kept);
  const data = new Float64Array(size(ref));
  for (let i = 0; i < data.length; i++) {
    const idx = unravel(i, ref);
    let off = 0;
    for (let a = 0; a < rank; a++) if (!ax.includes(a)) off += idx[a]! * ks[a]!;
    data[i] = mean ? dy.data[off]! / count : dy.data[off]!;
  }
  return { data, dims: [...ref] };
}
