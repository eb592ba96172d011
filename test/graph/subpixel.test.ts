import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../runtime/graph/builder.js';
import { lowerToOnnx, type PlannedWeight } from '../../runtime/graph/compile.js';
import type { Graph } from '../../runtime/graph/ir.js';
import { dequantizePerChannel, quantizePerChannel, relativeRms } from '../../runtime/graph/quantize.js';
import { evaluateReference } from '../../runtime/graph/reference.js';
import { compileGraph, graphHash, type CompileOptions, type TensorData } from '../../runtime/graph/session.js';
import { planSubpixel, subpixelWeight } from '../../runtime/graph/subpixel.js';
import { laidOutTensors } from '../../runtime/graph/weight-tensors.js';
import { buildUnetGraph } from '../../runtime/models/unet/unet.js';
import { freshUnet, loadCase } from '../pipeline/helpers.js';
import { uniform } from './harness.js';

/** Largest |a - b| over the largest |b|: the "same result" measure of these tests. */
function relMaxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
}

const opTypes = (g: Graph, o: CompileOptions = {}) => lowerToOnnx(g, o).model.graph.nodes.map((n) => n.opType);

interface Spec {
  c: number;
  o: number;
  bias?: boolean;
  overridable?: boolean;
  seed?: number;
  /** A weight source other than the seeded one (the "merged" weight of a patch). */
  weight?: Float32Array;
}

/** x[B, C, H, W] (symbolic sizes) → nearest 2× → 3×3 conv, pad 1 (+ bias): the decoders' upsampler. */
function upsampler(s: Spec): Graph {
  const g = new GraphBuilder();
  const seed = s.seed ?? 1;
  const x = g.input('x', 'float32', ['B', s.c, 'H', 'W']);
  const wData = s.weight ?? uniform(s.o * s.c * 9, seed, -0.2, 0.2);
  const w = g.weight('up.conv.weight', [s.o, s.c, 3, 3], { key: `sp:${s.o}:${s.c}:${seed}:${s.weight ? 'given' : 'seeded'}:${s.weight?.[0] ?? ''}`, load: () => wData }, { overridable: s.overridable ?? false });
  const bData = uniform(s.o, seed + 1, -0.5, 0.5);
  const b = s.bias === false ? undefined : g.weight('up.conv.bias', [s.o], { key: `sp-b:${s.o}:${seed}`, load: () => bData }, { overridable: s.overridable ?? false });
  g.output('y', g.conv2d(g.upsampleNearest(x, 2), w, b, { padding: 1 }));
  return g.graph;
}

const feed = (b: number, c: number, h: number, w: number, seed: number): Record<string, TensorData> => ({
  x: { data: uniform(b * c * h * w, seed), dims: [b, c, h, w] },
});

const SIZES: Array<[number, number, number]> = [
  [1, 5, 5],
  [2, 4, 7], // non-square, batch 2
  [1, 6, 3],
  [1, 1, 2], // one row: every output row touches the padding
];

describe('sub-pixel lowering of upsample → 3×3 conv, fp32', () => {
  it('emits one 2×2 Conv and DepthToSpace instead of Resize + 3×3 Conv; subpixel: false keeps the plain form', () => {
    const fast = opTypes(upsampler({ c: 8, o: 6 }));
    expect(fast).not.toContain('Resize');
    expect(fast.filter((o) => o === 'Conv')).toHaveLength(1);
    expect(fast).toContain('DepthToSpace');
    const lowered = lowerToOnnx(upsampler({ c: 8, o: 6 }));
    expect(lowered.weights.find((w) => w.irName === 'up.conv.weight')!.layout).toEqual({ kind: 'subpixel', dims: [24, 8, 2, 2] });
    const conv = lowered.model.graph.nodes.find((n) => n.opType === 'Conv')!;
    expect(conv.attributes!.kernel_shape).toEqual({ ints: [2, 2] });
    const plain = opTypes(upsampler({ c: 8, o: 6 }), { subpixel: false });
    expect(plain).toEqual(['Resize', 'Conv', 'Identity']);
  });

  it('equals the plain form and the float64 reference at several sizes (one session, symbolic H and W)', async () => {
    for (const bias of [true, false]) {
      const graph = upsampler({ c: 8, o: 6, bias, seed: 3 });
      const fast = await compileGraph(graph);
      const plain = await compileGraph(graph, { subpixel: false });
      for (const [i, [b, h, w]] of SIZES.entries()) {
        const f = feed(b, 8, h, w, 10 + i);
        const got = await fast.run(f);
        const want = await plain.run(f);
        expect([...got.y!.dims]).toEqual([b, 6, 2 * h, 2 * w]);
        expect(relMaxDiff(got.y!.data as Float32Array, want.y!.data as Float32Array), `bias ${bias} ${b}×${h}×${w}`).toBeLessThan(1e-5);
        const ref = evaluateReference(graph, f).y!;
        expect(relMaxDiff(got.y!.data as Float32Array, ref.data)).toBeLessThan(1e-5);
      }
    }
  });

  it('applies a fed (adapter-patched) weight live, the same as the plain form and as baking it', async () => {
    const merged = uniform(6 * 8 * 9, 77, -0.3, 0.3);
    const live = await compileGraph(upsampler({ c: 8, o: 6, overridable: true, seed: 5 }));
    const plainLive = await compileGraph(upsampler({ c: 8, o: 6, overridable: true, seed: 5 }), { subpixel: false });
    const baked = await compileGraph(upsampler({ c: 8, o: 6, seed: 5, weight: merged }));
    expect(live.overridableNames().sort()).toEqual(['up.conv.bias', 'up.conv.weight']);
    const f = feed(1, 8, 4, 6, 21);
    const over = new Map([['up.conv.weight', merged]]);
    const patched = (await live.run(f, over)).y!.data as Float32Array;
    const base = (await live.run(f)).y!.data as Float32Array;
    expect(relMaxDiff(patched, (await plainLive.run(f, over)).y!.data as Float32Array)).toBeLessThan(1e-5);
    expect(relMaxDiff(patched, (await baked.run(f)).y!.data as Float32Array)).toBeLessThan(1e-6);
    expect(relMaxDiff(base, (await plainLive.run(f)).y!.data as Float32Array)).toBeLessThan(1e-5);
    expect(relativeRms(patched, base)).toBeGreaterThan(0.3);
  });

  it('forms the sub-pixel kernel from sums of 3×3 taps (phase order s·2 + t = (1-a)·2 + (1-b))', () => {
    const w = Float32Array.from({ length: 9 }, (_, k) => 2 ** k); // taps distinguishable by their bits
    const sp = subpixelWeight(w, 1, 1);
    const tap = (dy: number, dx: number) => 2 ** (dy * 3 + dx);
    // block 3 = (s, t) = (1, 1) = phase (0, 0): rows {-1: W0, 0: W1+W2}, same for columns
    expect(Array.from(sp.slice(12, 16))).toEqual([tap(0, 0), tap(0, 1) + tap(0, 2), tap(1, 0) + tap(2, 0), tap(1, 1) + tap(1, 2) + tap(2, 1) + tap(2, 2)]);
    // block 0 = phase (1, 1): rows {0: W0+W1, +1: W2}
    expect(Array.from(sp.slice(0, 4))).toEqual([tap(0, 0) + tap(0, 1) + tap(1, 0) + tap(1, 1), tap(0, 2) + tap(1, 2), tap(2, 0) + tap(2, 1), tap(2, 2)]);
  });
});

/** The int8 path's own arithmetic in float64: u8 activations (per tensor), sub-pixel codes × per-channel scales. */
function int8Reference(x: Float32Array, [b, c, h, w]: number[], wq: { data: Int8Array; scales: Float32Array }, o: number, bias: Float32Array, xScale: number, xZero: number): Float64Array {
  const wf = dequantizePerChannel(wq, 4 * o, 4 * c);
  const out = new Float64Array(b * o * 4 * h * w);
  const H = 2 * h;
  const W = 2 * w;
  for (let n = 0; n < b; n++) {
    for (let oc = 0; oc < o; oc++) {
      for (let y = 0; y < H; y++) {
        for (let xx = 0; xx < W; xx++) {
          const [i, a, j, bb] = [y >> 1, y & 1, xx >> 1, xx & 1];
          const block = (1 - a) * 2 + (1 - bb);
          let acc = 0;
          for (let ci = 0; ci < c; ci++) {
            for (let u = 0; u < 2; u++) {
              const r = i + a - 1 + u;
              if (r < 0 || r >= h) continue;
              for (let v = 0; v < 2; v++) {
                const q = j + bb - 1 + v;
                if (q < 0 || q >= w) continue;
                const xq = Math.round(x[((n * c + ci) * h + r) * w + q]! / xScale) + xZero;
                acc += (xq - xZero) * xScale * wf[(((block * o + oc) * c + ci) * 2 + u) * 2 + v]!;
              }
            }
          }
          out[((n * o + oc) * H + y) * W + xx] = acc + bias[oc]!;
        }
      }
    }
  }
  return out;
}

describe('sub-pixel lowering, int8', () => {
  const C = 24;
  const O = 20;

  it('quantises the sub-pixel kernel per (phase, channel) after forming it in float', () => {
    const lowered = lowerToOnnx(upsampler({ c: C, o: O }), { precision: 'int8' });
    const planned = lowered.weights.find((w) => w.irName === 'up.conv.weight')! as PlannedWeight;
    expect(planned.layout).toEqual({ kind: 'int8_conv', dims: [4 * C, 4 * O], taps: 4, subpixel: true });
    const w = uniform(O * C * 9, 4, -0.2, 0.2);
    const [codes, scales] = laidOutTensors(planned, w);
    expect(codes!.dims).toEqual([4 * C, 4 * O]);
    expect(scales!.dims).toEqual([4 * O]);
    const sp = subpixelWeight(w, O, C);
    const q = quantizePerChannel(sp, 4 * O, 4 * C);
    expect(Array.from(scales!.data)).toEqual(Array.from(q.scales));
    // Every sub-pixel weight is within half a step of its own channel's scale.
    for (let oc = 0; oc < 4 * O; oc++) {
      for (let ci = 0; ci < C; ci++) {
        for (let k = 0; k < 4; k++) {
          const code = (codes!.data as Int8Array)[(k * C + ci) * 4 * O + oc]!;
          expect(Math.abs(code * q.scales[oc]! - sp[(oc * C + ci) * 4 + k]!)).toBeLessThanOrEqual(q.scales[oc]! / 2 + 1e-7);
        }
      }
    }
    expect(opTypes(upsampler({ c: C, o: O }), { precision: 'int8' })).not.toContain('Resize');
  });

  it('computes exactly its quantised arithmetic, and stays within int8 error of fp32 and of the plain int8 form', async () => {
    const graph = upsampler({ c: C, o: O, seed: 8 });
    const fast = await compileGraph(graph, { precision: 'int8' });
    const plainQ = await compileGraph(graph, { precision: 'int8', subpixel: false });
    const plainF = await compileGraph(graph, { precision: 'fp32', subpixel: false });
    const wData = graph.weights.find((w) => w.name === 'up.conv.weight')!.source.load();
    const bias = graph.weights.find((w) => w.name === 'up.conv.bias')!.source.load();
    const wq = quantizePerChannel(subpixelWeight(wData, O, C), 4 * O, 4 * C);
    for (const [i, [b, h, w]] of [[1, 5, 5], [2, 3, 6], [1, 7, 4]].entries()) {
      // Activations on u8's grid (scale 1/64, zero point 128, both ends present): quantising x is exact, so the
      // reference and ORT cannot differ by a rounding tie.
      const n = b * C * h * w;
      const x = Float32Array.from(uniform(n, 40 + i, 0, 256), (v) => (Math.min(255, Math.floor(v)) - 128) / 64);
      x[0] = -2;
      x[n - 1] = 127 / 64;
      const f = { x: { data: x, dims: [b!, C, h!, w!] } };
      const got = (await fast.run(f)).y!.data as Float32Array;
      const ref = int8Reference(x, [b!, C, h!, w!], wq, O, bias, 1 / 64, 128);
      expect(relMaxDiff(got, ref), `${b}×${h}×${w}`).toBeLessThan(1e-5);
      const fp32 = (await plainF.run(f)).y!.data as Float32Array;
      const e = relativeRms(got, fp32);
      expect(e).toBeGreaterThan(1e-4); // really quantised
      expect(e).toBeLessThan(0.03);
      expect(relativeRms(got, (await plainQ.run(f)).y!.data as Float32Array)).toBeLessThan(0.03);
    }
  });

  it('quantises a fed (patched) weight on the fly exactly as baking the merged weight', async () => {
    const merged = uniform(O * C * 9, 99, -0.3, 0.3);
    const lowered = lowerToOnnx(upsampler({ c: C, o: O, overridable: true, seed: 6 }), { precision: 'int8' });
    expect(lowered.model.graph.inputs.map((i) => [i.name, i.elemType, i.shape])).toEqual([
      ['x', 1, ['B', C, 'H', 'W']],
      ['up.conv.weight', 3, [4 * C, 4 * O]],
      ['up.conv.weight.qscale', 1, [4 * O]],
      ['up.conv.bias', 1, [O]],
    ]);
    const live = await compileGraph(upsampler({ c: C, o: O, overridable: true, seed: 6 }), { precision: 'int8' });
    const baked = await compileGraph(upsampler({ c: C, o: O, seed: 6, weight: merged }), { precision: 'int8' });
    const f = feed(1, C, 5, 3, 31);
    const patched = (await live.run(f, new Map([['up.conv.weight', merged]]))).y!.data as Float32Array;
    expect(Array.from(patched)).toEqual(Array.from((await baked.run(f)).y!.data as Float32Array));
    expect(relativeRms(patched, (await live.run(f)).y!.data as Float32Array)).toBeGreaterThan(0.3);
  });
});

describe('sub-pixel lowering falls back to the plain form', () => {
  it('when the upsampled tensor is read again, the weight is shared, or the conv is not 3×3/stride 1/pad 1', async () => {
    const build = (variant: 'reused' | 'shared' | 'kernel1' | 'stride2' | 'fast') => {
      const g = new GraphBuilder();
      const x = g.input('x', 'float32', ['B', 8, 'H', 'W']);
      const k = variant === 'kernel1' ? 1 : 3;
      const w = g.weight('w', [6, 8, k, k], { key: `fb:${k}`, load: () => uniform(6 * 8 * k * k, 2, -0.2, 0.2) });
      const up = g.upsampleNearest(x, 2);
      const y = g.conv2d(up, w, undefined, { padding: k === 3 ? 1 : 0, stride: variant === 'stride2' ? 2 : 1 });
      g.output('y', y);
      if (variant === 'reused') g.output('up', up);
      if (variant === 'shared') g.output('z', g.conv2d(x, w, undefined, { padding: 1 }));
      return g.graph;
    };
    for (const v of ['reused', 'shared', 'kernel1', 'stride2'] as const) {
      const graph = build(v);
      expect(planSubpixel(graph).convs.size, v).toBe(0);
      expect(opTypes(graph), v).toContain('Resize');
      expect(graphHash(graph), v).toBe(graphHash(graph, { subpixel: false }));
      const f = feed(1, 8, 3, 4, 5);
      const got = await (await compileGraph(graph)).run(f);
      const want = evaluateReference(graph, f);
      for (const name of Object.keys(want)) expect(relMaxDiff(got[name]!.data as Float32Array, want[name]!.data), `${v} ${name}`).toBeLessThan(1e-5);
    }
    const fast = build('fast');
    expect(planSubpixel(fast).convs.size).toBe(1);
    expect(graphHash(fast)).not.toBe(graphHash(fast, { subpixel: false }));
  });
});

/** The UNet's upsampler: nearest resize to the next skip's size (2n or, for odd latents, 2n-1), then the conv. */
function skipUpsampler(s: Spec): Graph {
  const g = new GraphBuilder();
  const seed = s.seed ?? 1;
  const x = g.input('x', 'float32', ['B', s.c, 'H', 'W']);
  const ref = g.input('skip', 'float32', ['B', 2, 'Hs', 'Ws']);
  const wData = s.weight ?? uniform(s.o * s.c * 9, seed, -0.2, 0.2);
  const w = g.weight('up.conv.weight', [s.o, s.c, 3, 3], { key: `spl:${s.o}:${s.c}:${seed}:${s.weight ? 'given' : 'seeded'}`, load: () => wData }, { overridable: s.overridable ?? false });
  const bData = uniform(s.o, seed + 1, -0.5, 0.5);
  const b = g.weight('up.conv.bias', [s.o], { key: `spl-b:${s.o}:${seed}`, load: () => bData }, { overridable: s.overridable ?? false });
  const y = g.conv2d(g.upsampleNearestLike(x, ref), w, b, { padding: 1 });
  g.output('y', g.concat([y, ref], 1)); // the skip is read again, as the UNet's next block does
  return g.graph;
}

const skipFeed = (c: number, [h, w, hs, ws]: number[], seed: number): Record<string, TensorData> => ({
  ...feed(1, c, h!, w!, seed),
  skip: { data: uniform(2 * hs! * ws!, seed + 7), dims: [1, 2, hs!, ws!] },
});

// exactly 2×, both odd (2n-1), one odd, and a tiny map
const SKIP_SIZES = [[4, 5, 8, 10], [4, 5, 7, 9], [4, 5, 8, 9], [3, 3, 5, 6], [1, 2, 2, 4], [1, 2, 1, 3]];

describe('sub-pixel lowering at skip sizes (UNet upsamplers): run-time dispatch', () => {
  it('takes the sub-pixel form when the skip is exactly 2×, and the plain form (same numbers) otherwise', async () => {
    const graph = skipUpsampler({ c: 8, o: 6, seed: 12 });
    expect(opTypes(graph)).toContain('If');
    expect(opTypes(graph, { subpixel: false })).not.toContain('If');
    // Portable graphs (other execution providers) keep skip-sized pairs plain, but fuse the static 2× ones.
    expect(opTypes(graph, { portable: true })).toEqual(opTypes(graph, { portable: true, subpixel: false }));
    expect(opTypes(upsampler({ c: 8, o: 6 }), { portable: true })).toContain('DepthToSpace');
    const fast = await compileGraph(graph);
    const plain = await compileGraph(graph, { subpixel: false });
    for (const [i, sz] of SKIP_SIZES.entries()) {
      const f = skipFeed(8, sz, 50 + i);
      const got = (await fast.run(f)).y!;
      expect([...got.dims]).toEqual([1, 8, sz[2], sz[3]]);
      expect(relMaxDiff(got.data as Float32Array, (await plain.run(f)).y!.data as Float32Array), sz.join('×')).toBeLessThan(1e-5);
      expect(relMaxDiff(got.data as Float32Array, evaluateReference(graph, f).y!.data), sz.join('×')).toBeLessThan(1e-5);
    }
  });

  it('applies a fed weight live in both branches', async () => {
    const merged = uniform(6 * 8 * 9, 78, -0.3, 0.3);
    const live = await compileGraph(skipUpsampler({ c: 8, o: 6, overridable: true, seed: 13 }));
    const plain = await compileGraph(skipUpsampler({ c: 8, o: 6, overridable: true, seed: 13 }), { subpixel: false });
    const over = new Map([['up.conv.weight', merged]]);
    for (const sz of [[4, 5, 8, 10], [4, 5, 7, 9]]) {
      const f = skipFeed(8, sz, 60);
      const patched = (await live.run(f, over)).y!.data as Float32Array;
      expect(relMaxDiff(patched, (await plain.run(f, over)).y!.data as Float32Array)).toBeLessThan(1e-5);
      expect(relativeRms(patched, (await live.run(f)).y!.data as Float32Array)).toBeGreaterThan(0.1);
    }
  });

  it('int8: the 2× case equals the static sub-pixel form; odd sizes equal today\'s int8 path', async () => {
    const [C, O] = [24, 20];
    const like = await compileGraph(skipUpsampler({ c: C, o: O, seed: 14 }), { precision: 'int8' });
    const plainQ = await compileGraph(skipUpsampler({ c: C, o: O, seed: 14 }), { precision: 'int8', subpixel: false });
    const plainF = await compileGraph(skipUpsampler({ c: C, o: O, seed: 14 }), { precision: 'fp32', subpixel: false });
    const wData = uniform(O * C * 9, 14, -0.2, 0.2);
    const fixed = await compileGraph(upsampler({ c: C, o: O, seed: 14, weight: wData }), { precision: 'int8' });
    const lowered = lowerToOnnx(skipUpsampler({ c: C, o: O }), { precision: 'int8' });
    // Odd sizes keep today's int8 conv: its 3×3 codes are held beside the sub-pixel ones.
    expect(lowered.weights.find((w) => w.irName === 'up.conv.weight')!.layout).toEqual({ kind: 'int8_conv', dims: [4 * C, 4 * O], taps: 4, subpixel: true, plain: [9 * C, O] });
    const branches = lowered.model.graph.nodes.find((n) => n.opType === 'If')!.attributes!;
    const inBranch = (k: string) => ('g' in branches[k]! ? branches[k].g.nodes.map((n) => n.opType) : []);
    expect(inBranch('then_branch')).toContain('MatMulInteger');
    expect(inBranch('else_branch')).toContain('Resize');
    for (const [i, sz] of [[4, 5, 8, 10], [4, 5, 7, 9], [3, 4, 6, 7]].entries()) {
      const f = skipFeed(C, sz, 70 + i);
      const got = ((await like.run(f)).y!.data as Float32Array).slice(0, O * sz[2]! * sz[3]!); // the conv's channels
      const today = ((await plainQ.run(f)).y!.data as Float32Array).slice(0, got.length);
      if (sz[2] === 2 * sz[0]! && sz[3] === 2 * sz[1]!) expect(Array.from(got)).toEqual(Array.from((await fixed.run({ x: f.x! })).y!.data as Float32Array));
      else expect(relMaxDiff(got, today), sz.join('×')).toBeLessThan(1e-6);
      const fp32 = ((await plainF.run(f)).y!.data as Float32Array).slice(0, got.length);
      const e = relativeRms(got, fp32);
      expect(e, sz.join('×')).toBeGreaterThan(1e-4);
      expect(e, sz.join('×')).toBeLessThan(0.03);
      expect(relativeRms(got, today)).toBeLessThan(0.03);
    }
  });

  it('int8: a fed weight feeds both code sets, quantised from the same patched floats', async () => {
    const [C, O] = [24, 20];
    const merged = uniform(O * C * 9, 79, -0.3, 0.3);
    const lowered = lowerToOnnx(skipUpsampler({ c: C, o: O, overridable: true, seed: 15 }), { precision: 'int8' });
    expect(lowered.model.graph.inputs.map((i) => [i.name, i.elemType, i.shape])).toEqual([
      ['x', 1, ['B', C, 'H', 'W']],
      ['skip', 1, ['B', 2, 'Hs', 'Ws']],
      ['up.conv.weight', 3, [4 * C, 4 * O]],
      ['up.conv.weight.qscale', 1, [4 * O]],
      ['up.conv.weight.plain', 3, [9 * C, O]],
      ['up.conv.weight.plain.qscale', 1, [O]],
      ['up.conv.bias', 1, [O]],
    ]);
    const live = await compileGraph(skipUpsampler({ c: C, o: O, overridable: true, seed: 15 }), { precision: 'int8' });
    const baked = await compileGraph(skipUpsampler({ c: C, o: O, seed: 15, weight: merged }), { precision: 'int8' });
    for (const sz of [[4, 5, 8, 10], [4, 5, 7, 9]]) {
      const f = skipFeed(C, sz, 61);
      const patched = (await live.run(f, new Map([['up.conv.weight', merged]]))).y!.data as Float32Array;
      expect(Array.from(patched), sz.join('×')).toEqual(Array.from((await baked.run(f)).y!.data as Float32Array));
    }
    await live.run(skipFeed(C, [4, 5, 7, 9], 62));
    // Base values held as codes: sub-pixel [4C, 4O] + 4O scales, 3×3 [9C, O] + O scales, and the fp32 bias.
    expect(live.defaultBytes).toBe(16 * C * O + 4 * 4 * O + 9 * C * O + 4 * O + 4 * O);
  });

  it('the tiny SD1.5 UNet: fast equals plain at even and odd latent sizes, fp32 (and int8 within its error)', async () => {
    const c = loadCase('unet');
    const unet = freshUnet(c);
    const graph = () => buildUnetGraph(unet.weights, unet.config, {});
    expect(planSubpixel(graph()).convs.size).toBeGreaterThan(0);
    const fast = await compileGraph(graph());
    const plain = await compileGraph(graph(), { subpixel: false });
    const fastQ = await compileGraph(graph(), { precision: 'int8' });
    const base = { timesteps: c.input('timesteps'), context: c.input('context') };
    const channels = c.input('x').dims[1]!;
    for (const [h, w] of [[16, 24], [13, 11]]) {
      const x = { data: uniform(2 * channels * h! * w!, h! * 100 + w!), dims: [2, channels, h!, w!] };
      const b = c.input('x').dims[0]!;
      const xs = { data: x.data.slice(0, b * channels * h! * w!), dims: [b, channels, h!, w!] };
      const feeds = { ...base, x: xs };
      const got = (await fast.run(feeds)).eps!.data as Float32Array;
      const want = (await plain.run(feeds)).eps!.data as Float32Array;
      expect(relMaxDiff(got, want), `${h}×${w}`).toBeLessThan(1e-5);
      const q = relativeRms((await fastQ.run(feeds)).eps!.data as Float32Array, want);
      expect(q).toBeGreaterThan(1e-4);
      expect(q).toBeLessThan(0.12); // int8.test.ts's bound for this model
    }
    const r = c.check('eps', (await fast.run({ ...base, x: c.input('x') })).eps!.data as Float32Array);
    expect(r.pass, r.note).toBe(true);
  });
});
