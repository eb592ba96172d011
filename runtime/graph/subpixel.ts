import type { Graph, Node } from './ir.js';
import { OnnxType, type OnnxAttr, type OnnxGraph, type OnnxNode } from '../onnx/model.js';
import { nearestAttrs } from './compile.js';

/**
 * Sub-pixel lowering of "nearest 2× upsample → 3×3 conv (stride 1, pad 1)", the decoder upsamplers of the SD
 * VAE and UNet. Along one axis, output row 2i+a of the conv reads upsampled rows 2i+a-1..2i+a+1, i.e. input
 * rows floor((2i+a+dy)/2): phase a=0 sees input rows {i-1: W[0], i: W[1]+W[2]}, phase a=1 sees {i: W[0]+W[1],
 * i+1: W[2]}. So the four output phases are 2×2 convs of x itself, which one 2×2 conv with 4·O output channels
 * and pad 1 computes on an (H+1)×(W+1) grid; phase (a,b) sits at rows a..a+H-1, cols b..b+W-1 of it. About
 * 16(H+1)(W+1) / (36·H·W) ≈ 0.44 of the FLOPs, exact (zero padding included), and the 4× upsampled tensor is
 * never materialised.
 *
 * The model code keeps stating upsample-then-conv; the lowering recognises the pair. A UNet upsamples to its next
 * skip's size instead (odd latents give 2n-1 rows, where the conv's border differs): there the graph checks at
 * run time that the skip is exactly 2× and otherwise runs the plain form (an ONNX If; see lowerSubpixelDispatch).
 * A pair is only taken when the upsampled tensor feeds nothing else (training graphs read it again for the
 * weight gradient and LoRA branches) and the weight is a graph weight read only by such pairs, since the
 * weight's layout changes: baked and fed (adapter-patched) weights both go through `subpixelWeight`, and int8
 * quantises the sub-pixel weight per output channel after it is formed in float.
 */

export interface SubpixelPlan {
  /** Conv nodes lowered in sub-pixel form, each with its upsample (whose input the conv reads instead). */
  convs: Map<Node, Node>;
  /** Upsample nodes that are not emitted (their output is read only by a conv in `convs`). */
  upsamples: Set<Node>;
  /** Weight values laid out as sub-pixel weights. */
  weights: Set<number>;
  /** Those of them read by a run-time dispatched (skip-sized) pair. */
  dispatched: Set<number>;
}

/** Where a dispatched int8 weight keeps its plain 3×3 codes (and, via scaleName, their scales). */
export const plainName = (onnxName: string): string => `${onnxName}.plain`;

export const NO_SUBPIXEL: SubpixelPlan = { convs: new Map(), upsamples: new Set(), weights: new Set(), dispatched: new Set() };

function fitsConv(graph: Graph, n: Node): boolean {
  if (n.op !== 'conv2d' || n.attrs.stride !== 1 || n.attrs.padding !== 1 || n.attrs.dilation !== 1 || n.attrs.groups !== 1) return false;
  const w = graph.values[n.inputs[1]!]!.shape;
  return w.length === 4 && w.every((d) => typeof d === 'number') && w[2] === 3 && w[3] === 3 && graph.values[n.inputs[0]!]!.shape.length === 4;
}

/**
 * Finds the upsample → conv pairs the lowering may fuse. `dispatch: false` (portable graphs for other execution
 * providers, where an If may split the graph across devices) leaves skip-sized pairs plain.
 */
export function planSubpixel(graph: Graph, opts: { dispatch?: boolean } = {}): SubpixelPlan {
  const dispatch = opts.dispatch ?? true;
  const producer = new Map<number, Node>();
  const consumers = new Map<number, Node[]>();
  for (const n of graph.nodes) {
    for (const o of n.outputs) producer.set(o, n);
    for (const i of new Set(n.inputs)) {
      let list = consumers.get(i);
      if (!list) consumers.set(i, (list = []));
      list.push(n);
    }
  }
  const outputs = new Set(graph.outputs.map((o) => o.value));
  const weightValues = new Set(graph.weights.map((w) => w.value));
  const pairOf = (n: Node): Node | undefined => {
    if (!fitsConv(graph, n)) return undefined;
    const up = producer.get(n.inputs[0]!);
    if (!up || !((up.op === 'upsample_nearest' && up.attrs.scale === 2) || (dispatch && up.op === 'upsample_nearest_like'))) return undefined;
    const upOut = up.outputs[0]!;
    if (outputs.has(upOut) || n.inputs.indexOf(upOut, 1) !== -1) return undefined;
    const readers = consumers.get(upOut) ?? [];
    return readers.length === 1 && readers[0] === n ? up : undefined;
  };
  const plan: SubpixelPlan = { convs: new Map(), upsamples: new Set(), weights: new Set(), dispatched: new Set() };
  for (const n of graph.nodes) {
    const up = pairOf(n);
    const w = n.inputs[1]!;
    if (!up || !weightValues.has(w) || n.inputs[2] === w) continue;
    // Every reader of the weight must be a fusable conv reading it as its kernel, or its layout cannot change.
    if (!(consumers.get(w) ?? []).every((c) => pairOf(c) !== undefined && c.inputs.indexOf(w) === 1 && c.inputs.lastIndexOf(w) === 1)) continue;
    plan.convs.set(n, up);
    plan.upsamples.add(up);
    plan.weights.add(w);
    if (up.op === 'upsample_nearest_like') plan.dispatched.add(w);
  }
  return plan;
}

export function hasSubpixel(graph: Graph, opts: { dispatch?: boolean } = {}): boolean {
  return planSubpixel(graph, opts).convs.size > 0;
}

// Phase a's two taps (u = 0: input row r-1, u = 1: row r of the pad-1 2×2 conv) as sums of 3×3 rows dy.
const TAPS: ReadonlyArray<ReadonlyArray<readonly number[]>> = [
  [[0], [1, 2]], // a = 0
  [[0, 1], [2]], // a = 1
];

/**
 * [O, C, 3, 3] → [4·O, C, 2, 2]. Output channel block p = s·2 + t holds phase (a, b) = (1-s, 1-t): that order
 * makes DepthToSpace (DCR) of the (H+1)×(W+1) result put every phase at a one-pixel offset, so one crop ends it.
 */
export function subpixelWeight(w: Float32Array, out: number, inC: number): Float32Array {
  if (w.length !== out * inC * 9) throw new Error(`subpixelWeight: ${w.length} values do not form [${out}, ${inC}, 3, 3]`);
  const r = new Float32Array(4 * out * inC * 4);
  for (let s = 0; s < 2; s++) {
    for (let t = 0; t < 2; t++) {
      const rows = TAPS[1 - s]!;
      const cols = TAPS[1 - t]!;
      for (let o = 0; o < out; o++) {
        for (let c = 0; c < inC; c++) {
          const src = (o * inC + c) * 9;
          const dst = (((s * 2 + t) * out + o) * inC + c) * 4;
          for (let u = 0; u < 2; u++) {
            for (let v = 0; v < 2; v++) {
              let acc = 0;
              for (const dy of rows[u]!) for (const dx of cols[v]!) acc += w[src + dy * 3 + dx]!;
              r[dst + u * 2 + v] = acc;
            }
          }
        }
      }
    }
  }
  return r;
}

export interface Emit {
  emit: (opType: string, inputs: string[], outputs: string[], attributes?: Record<string, OnnxAttr>, domain?: string) => void;
  fresh: (hint: string) => string;
  i64: (values: number[]) => string;
}

/** The same bias for all four phases: [O] → [4·O] (phase-major, as the sub-pixel weight's channels). */
export function tiledBias(bias: string, e: Emit): string {
  const b4 = e.fresh('sp_bias');
  e.emit('Tile', [bias, e.i64([4])], [b4]);
  return b4;
}

const CONV2X2: Record<string, OnnxAttr> = { kernel_shape: { ints: [2, 2] }, pads: { ints: [1, 1, 1, 1] }, strides: { ints: [1, 1] }, dilations: { ints: [1, 1] }, group: { i: 1 } };

/** fp32: Conv(x, [4O, C, 2, 2], pad 1) → DepthToSpace → crop one pixel on each side. */
export function lowerSubpixelConv(ins: string[], out: string, e: Emit): void {
  const inputs = [ins[0]!, ins[1]!];
  if (ins[2]) inputs.push(tiledBias(ins[2], e));
  const grid = e.fresh('sp_grid');
  e.emit('Conv', inputs, [grid], CONV2X2);
  interleave(grid, out, e);
}

/**
 * int8: the conv ran channels-last, [B, H+1, W+1, 4·O]. Back to NCHW with the usual 4-D transpose, then as fp32.
 * (One 6-D transpose that also interleaves the phases measured slower: ORT's generic N-D transpose.)
 */
export function finishSubpixelNhwc(nhwc: string, out: string, e: Emit): void {
  const grid = e.fresh('sp_nchw');
  e.emit('Transpose', [nhwc], [grid], { perm: { ints: [0, 3, 1, 2] } });
  interleave(grid, out, e);
}

/** [B, 4·O, H+1, W+1] → DepthToSpace → [B, O, 2H+2, 2W+2] → crop one pixel on each side. */
function interleave(grid: string, out: string, e: Emit): void {
  const wide = e.fresh('sp_d2s');
  e.emit('DepthToSpace', [grid], [wide], { blocksize: { i: 2 }, mode: { s: 'DCR' } });
  e.emit('Slice', [wide, e.i64([1, 1]), e.i64([-1, -1]), e.i64([2, 3])], [out]);
}

// 3×3 taps back from the sub-pixel blocks, per axis: w0 = K0[0], w1 = K1[0] - K0[0], w2 = K1[1], where phase a's
// kernel K_a is block s = 1 - a. Entries: [s, u, coefficient].
const INVERSE: ReadonlyArray<ReadonlyArray<readonly [number, number, number]>> = [
  [[1, 0, 1]],
  [[0, 0, 1], [1, 0, -1]],
  [[0, 1, 1]],
];

/** [16, 9]: row (s·2 + t)·4 + u·2 + v (a sub-pixel tap), column dy·3 + dx (a 3×3 tap). */
function inverseMatrix(): Float32Array {
  const m = new Float32Array(16 * 9);
  for (let dy = 0; dy < 3; dy++) {
    for (let dx = 0; dx < 3; dx++) {
      for (const [s, u, cy] of INVERSE[dy]!) for (const [t, v, cx] of INVERSE[dx]!) m[((s * 2 + t) * 4 + u * 2 + v) * 9 + dy * 3 + dx] = cy * cx;
    }
  }
  return m;
}

/** The plain [O, C, 3, 3] kernel from the session's fp32 sub-pixel weight [4O, C, 2, 2] = [s, t, O, C, u, v]. */
function plainKernel(w: string, o: number, c: number, e: Emit): string {
  const r = e.fresh('sp_wsplit');
  e.emit('Reshape', [w, e.i64([2, 2, o, c, 2, 2])], [r]);
  const t = e.fresh('sp_wperm');
  e.emit('Transpose', [r], [t], { perm: { ints: [2, 3, 0, 1, 4, 5] } });
  const flat = e.fresh('sp_wflat');
  e.emit('Reshape', [t, e.i64([o, c, 16])], [flat]);
  const m = e.fresh('sp_inverse');
  e.emit('Constant', [], [m], { value: { t: { name: m, dataType: OnnxType.FLOAT, dims: [16, 9], raw: new Uint8Array(inverseMatrix().buffer) } } });
  const taps = e.fresh('sp_w9');
  e.emit('MatMul', [flat, m], [taps]);
  const k = e.fresh('sp_w3');
  e.emit('Reshape', [taps, e.i64([o, c, 3, 3])], [k]);
  return k;
}

function branch(name: string, out: string, e: Emit, body: (em: Emit) => void): OnnxGraph {
  const nodes: OnnxNode[] = [];
  const em: Emit = {
    emit: (opType, inputs, outputs, attributes, domain) => {
      const n: OnnxNode = { opType, inputs, outputs };
      if (attributes) n.attributes = attributes;
      if (domain) n.domain = domain;
      nodes.push(n);
    },
    fresh: e.fresh,
    i64: e.i64,
  };
  body(em);
  return { name, nodes, inputs: [], outputs: [{ name: out, elemType: OnnxType.FLOAT, shape: [null, null, null, null] }], initializers: [] };
}

/**
 * upsample-to-`ref` → conv: the sub-pixel form when ref's H, W are exactly twice x's, else (odd sizes) the plain
 * Resize + 3×3 conv: fp32 recovers the 3×3 kernel from the sub-pixel weight in the graph (only that branch pays
 * it, and no second copy is held); int8 runs today's int8 conv on 3×3 codes kept beside the sub-pixel ones.
 * `fast` emits the sub-pixel conv (fp32 or int8) into the branch it is given.
 */
export function lowerSubpixelDispatch(
  ins: string[],
  ref: string,
  out: string,
  w: { o: number; c: number },
  fast: (e: Emit, out: string) => void,
  plainInt8: ((e: Emit, up: string, out: string) => void) | undefined,
  e: Emit,
): void {
  const [x, wName, bias] = ins as [string, string, string | undefined];
  const sx = e.fresh('sp_sx');
  const sr = e.fresh('sp_sr');
  e.emit('Shape', [x], [sx], { start: { i: 2 } });
  e.emit('Shape', [ref], [sr], { start: { i: 2 } });
  const twice = e.fresh('sp_twice');
  e.emit('Mul', [sx, e.i64([2])], [twice]);
  const eq = e.fresh('sp_eq');
  e.emit('Equal', [sr, twice], [eq]);
  const eqI = e.fresh('sp_eqi');
  e.emit('Cast', [eq], [eqI], { to: { i: OnnxType.INT64 } });
  const all = e.fresh('sp_all');
  e.emit('ReduceMin', [eqI], [all], { keepdims: { i: 1 } });
  const cond = e.fresh('sp_cond');
  e.emit('Cast', [all], [cond], { to: { i: OnnxType.BOOL } });
  const fastOut = e.fresh('sp_fast_out');
  let thenG: OnnxGraph;
  if (plainInt8) thenG = branch('subpixel_fast', fastOut, e, (em) => fast(em, fastOut));
  else {
    // fp32 keeps the 2×2 Conv in the main graph, where ORT optimises it fully (inside an If branch it measured
    // ~1.4× slower): it reads x when the skip is 2× and a 1×1 corner of x otherwise (its result then unused).
    const picked = e.fresh('sp_xsel');
    const xAll = e.fresh('sp_xall');
    const xCorner = e.fresh('sp_xcorner');
    const takeAll = branch('subpixel_x', xAll, e, (em) => em.emit('Identity', [x], [xAll]));
    const takeCorner = branch('subpixel_corner', xCorner, e, (em) => em.emit('Slice', [x, em.i64([0, 0]), em.i64([1, 1]), em.i64([2, 3])], [xCorner]));
    e.emit('If', [cond], [picked], { then_branch: { g: takeAll }, else_branch: { g: takeCorner } });
    const grid = e.fresh('sp_grid');
    e.emit('Conv', bias ? [picked, wName, tiledBias(bias, e)] : [picked, wName], [grid], CONV2X2);
    thenG = branch('subpixel_fast', fastOut, e, (em) => interleave(grid, fastOut, em));
  }
  const plainOut = e.fresh('sp_plain_out');
  const elseG = branch('subpixel_plain', plainOut, e, (em) => {
    const head = em.fresh('sp_sxh');
    em.emit('Shape', [x], [head], { end: { i: 2 } });
    const sizes = em.fresh('sp_sizes');
    em.emit('Concat', [head, sr], [sizes], { axis: { i: 0 } });
    const up = em.fresh('sp_up');
    em.emit('Resize', [x, '', '', sizes], [up], nearestAttrs());
    if (plainInt8) return plainInt8(em, up, plainOut);
    const k = plainKernel(wName, w.o, w.c, em);
    em.emit('Conv', bias ? [up, k, bias] : [up, k], [plainOut], { kernel_shape: { ints: [3, 3] }, pads: { ints: [1, 1, 1, 1] }, strides: { ints: [1, 1] }, dilations: { ints: [1, 1] }, group: { i: 1 } });
  });
  e.emit('If', [cond], [out], { then_branch: { g: thenG }, else_branch: { g: elseG } });
}
