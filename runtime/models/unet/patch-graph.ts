/**
 * The graph side of the UNet patches (patches.ts plans them): every size-dependent constant and random
 * choice arrives as a run-time input, so one compiled variant serves every latent size and every step.
 */
import type { GraphBuilder, T } from '../../graph/builder.js';
import type { FreeUPatch } from './patches.js';
import type { LatentResizeMethod } from './resample-weights.js';

/** Resizes h [B, C, H, W] with the feeds planned under `key` (see patches.ts putResize). */
export function resizeInGraph(g: GraphBuilder, h: T, key: string, method: LatentResizeMethod): T {
  if (method === 'bislerp') {
    const axis = (x: T, ax: 2 | 3, tag: 'w' | 'h') => {
      const n = `${key}_${tag}_n`;
      const i1 = g.input(`${key}_${tag}_i1`, 'int64', [n]);
      const i2 = g.input(`${key}_${tag}_i2`, 'int64', [n]);
      const r = g.input(`${key}_${tag}_r`, 'float32', ax === 3 ? [1, 1, 1, n] : [1, 1, n, 1]);
      return slerpGathered(g, g.gather(x, i1, ax), g.gather(x, i2, ax), r);
    };
    // ComfyUI's bislerp: the width pass first, then the height pass on its result.
    return axis(axis(h, 3, 'w'), 2, 'h');
  }
  const my = g.input(`${key}_my`, 'float32', [`${key}_oh`, `${key}_ih`]);
  const mxt = g.input(`${key}_mxt`, 'float32', [`${key}_iw`, `${key}_ow`]);
  return g.matmul(g.matmul(my, h), mxt);
}

/** bislerp's slerp over the channel vectors of two gathered tensors [B, C, H, W] with ratio r. */
function slerpGathered(g: GraphBuilder, p1: T, p2: T, r: T): T {
  const norm = (p: T) => g.sqrt(g.reduceSum(g.mul(p, p), [1]));
  const n1 = norm(p1);
  const n2 = norm(p2);
  // Zero vectors normalise to 0 (ComfyUI overwrites the NaN of 0/0).
  const a = g.select(g.greater(n1, 0), g.div(p1, n1), 0);
  const b = g.select(g.greater(n2, 0), g.div(p2, n2), 0);
  const dot = g.reduceSum(g.mul(a, b), [1]);
  const omega = g.acos(dot);
  const so = g.sin(omega);
  const r1 = g.sub(1, r);
  const slerp = g.add(g.mul(g.div(g.sin(g.mul(r1, omega)), so), a), g.mul(g.div(g.sin(g.mul(r, omega)), so), b));
  const scaled = g.mul(slerp, g.add(g.mul(n1, r1), g.mul(n2, r)));
  const linear = g.add(g.mul(p1, r1), g.mul(p2, r));
  // Nearly parallel: the first vector as is; nearly opposite: a plain linear blend.
  return g.select(g.greater(dot, 1 - 1e-5), p1, g.select(g.greater(1e-5 - 1, dot), linear, scaled));
}

/**
 * FreeU / FreeU_V2 on (h, hsp) before output block j's skip concat: the backbone factor on h's first half
 * of channels, and the Fourier filter on the skip as `hsp + Ry hsp Rx^T - Iy hsp Ix^T` ((s - 1) is folded
 * into the fed Ry, Iy).
 */
export function freeuInGraph(g: GraphBuilder, h: T, hsp: T, j: number, p: FreeUPatch, b: number): { h: T; hsp: T } {
  const C = h.shape[1] as number;
  const half = Math.floor(C / 2);
  let out: T;
  if (p.version === 1) {
    const vec = new Float32Array(C).fill(1);
    vec.fill(b, 0, half);
    out = g.mul(h, g.constant(vec, [1, C, 1, 1]));
  } else {
    const hm = g.reduceMean(h, [1]);
    const mx = g.reduceMax(hm, [2, 3]);
    const mn = g.neg(g.reduceMax(g.neg(hm), [2, 3]));
    const norm = g.div(g.sub(hm, mn), g.sub(mx, mn));
    const factor = g.add(g.mul(norm, b - 1), 1);
    out = g.concat([g.mul(g.slice(h, 1, 0, half), factor), g.slice(h, 1, half, C)], 1);
  }
  const fy = `freeu_${j}_h`;
  const fx = `freeu_${j}_w`;
  const ry = g.input(`freeu_${j}_ry`, 'float32', [fy, fy]);
  const iy = g.input(`freeu_${j}_iy`, 'float32', [fy, fy]);
  const rxt = g.input(`freeu_${j}_rxt`, 'float32', [fx, fx]);
  const ixt = g.input(`freeu_${j}_ixt`, 'float32', [fx, fx]);
  const low = g.sub(g.matmul(g.matmul(ry, hsp), rxt), g.matmul(g.matmul(iy, hsp), ixt));
  return { h: out, hsp: g.add(hsp, low) };
}

/**
 * HyperTile's tiled self-attention for attn1 layer k: only the queries are regrouped into tiles (a gather
 * by the fed permutation, then a reshape to [B*tiles, N/tiles, C]); keys and values keep their raster order
 * and are split into contiguous chunks by the same reshape, as ComfyUI's attention does. One tile (the fed
 * identity) is plain attention.
 */
export function tiledSelfAttention(
  g: GraphBuilder,
  n1: T,
  k: number,
  heads: number,
  project: (x: T, which: 'to_q' | 'to_k' | 'to_v' | 'to_out.0') => T,
  kv: { k: T; v: T } = { k: n1, v: n1 },
): T {
  const n = n1.shape[1]!;
  const perm = g.input(`hypertile_${k}_perm`, 'int64', [n]);
  const inv = g.input(`hypertile_${k}_inv`, 'int64', [n]);
  const shape = g.input(`hypertile_${k}_shape`, 'int64', [3]);
  const q = project(g.gather(n1, perm, 1), 'to_q');
  const kk = project(kv.k, 'to_k');
  const v = project(kv.v, 'to_v');
  const tileShape = (t: T) => [`ht${k}_bt`, `ht${k}_nt`, t.shape[2]!];
  const o = g.attention(g.reshapeTo(q, shape, tileShape(q)), g.reshapeTo(kk, shape, tileShape(kk)), g.reshapeTo(v, shape, tileShape(v)), heads);
  return project(g.gather(g.reshapeLike(o, q), inv, 1), 'to_out.0');
}
