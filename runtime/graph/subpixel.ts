import type { Graph, Node } from './ir.js';
import type { OnnxAttr } from '../onnx/model.js';

/**
 * Sub-pixel lowering of "nearest 2× upsample → 3×3 conv (stride 1, pad 1)", the decoder upsamplers of the SD
 * VAE and UNet. Along one axis, output row 2i+a of the conv reads upsampled rows 2i+a-1..2i+a+1, i.e. input
 * rows floor((2i+a+dy)/2): phase a=0 sees input rows {i-1: W[0], i: W[1]+W[2]}, phase a=1 sees {i: W[0]+W[1],
 * i+1: W[2]}. So the four output phases are 2×2 convs of x itself, which one 2×2 conv with 4·O output channels
 * and pad 1 computes on an (H+1)×(W+1) grid; phase (a,b) sits at rows a..a+H-1, cols b..b+W-1 of it. About
 * 16(H+1)(W+1) / (36·H·W) ≈ 0.44 of the FLOPs, exact (zero padding included), and the 4× upsampled tensor is
 * never materialised.
 *
 * The model code keeps stating upsample-then-conv; the lowering recognises the pair. It only takes the pair when
 * the upsampled tensor feeds nothing else (training graphs read it again for the weight gradient and LoRA
 * branches) and the weight is a graph weight read only by such pairs, since the weight's layout changes: baked
 * and fed (adapter-patched) weights both go through `subpixelWeight`, and int8 quantises the sub-pixel weight
 * per output channel after it is formed in float.
 */

export interface SubpixelPlan {
  /** Conv nodes lowered in sub-pixel form (their input 0 is the upsample's input). */
  convs: Set<Node>;
  /** Upsample nodes that are not emitted (their output is read only by a conv in `convs`). */
  upsamples: Set<Node>;
  /** Weight values laid out as sub-pixel weights. */
  weights: Set<number>;
}

export const NO_SUBPIXEL: SubpixelPlan = { convs: new Set(), upsamples: new Set(), weights: new Set() };

function fitsConv(graph: Graph, n: Node): boolean {
  if (n.op !== 'conv2d' || n.attrs.stride !== 1 || n.attrs.padding !== 1 || n.attrs.dilation !== 1 || n.attrs.groups !== 1) return false;
  const w = graph.values[n.inputs[1]!]!.shape;
  return w.length === 4 && w.every((d) => typeof d === 'number') && w[2] === 3 && w[3] === 3 && graph.values[n.inputs[0]!]!.shape.length === 4;
}

/** Finds the upsample → conv pairs the lowering may fuse. */
export function planSubpixel(graph: Graph): SubpixelPlan {
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
    if (!up || up.op !== 'upsample_nearest' || up.attrs.scale !== 2) return undefined;
    const upOut = up.outputs[0]!;
    if (outputs.has(upOut) || n.inputs.indexOf(upOut, 1) !== -1) return undefined;
    const readers = consumers.get(upOut) ?? [];
    return readers.length === 1 && readers[0] === n ? up : undefined;
  };
  const plan: SubpixelPlan = { convs: new Set(), upsamples: new Set(), weights: new Set() };
  for (const n of graph.nodes) {
    const up = pairOf(n);
    const w = n.inputs[1]!;
    if (!up || !weightValues.has(w) || n.inputs[2] === w) continue;
    // Every reader of the weight must be a fusable conv reading it as its kernel, or its layout cannot change.
    if (!(consumers.get(w) ?? []).every((c) => pairOf(c) !== undefined && c.inputs.indexOf(w) === 1 && c.inputs.lastIndexOf(w) === 1)) continue;
    plan.convs.add(n);
    plan.upsamples.add(up);
    plan.weights.add(w);
  }
  return plan;
}

export function hasSubpixel(graph: Graph): boolean {
  return planSubpixel(graph).convs.size > 0;
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

interface Emit {
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

/** fp32: Conv(x, [4O, C, 2, 2], pad 1) → DepthToSpace → crop one pixel on each side. */
export function lowerSubpixelConv(ins: string[], out: string, e: Emit): void {
  const inputs = [ins[0]!, ins[1]!];
  if (ins[2]) inputs.push(tiledBias(ins[2], e));
  const grid = e.fresh('sp_grid');
  e.emit('Conv', inputs, [grid], { kernel_shape: { ints: [2, 2] }, pads: { ints: [1, 1, 1, 1] }, strides: { ints: [1, 1] }, dilations: { ints: [1, 1] }, group: { i: 1 } });
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
