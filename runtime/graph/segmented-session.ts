/**
 * Checkpointed training, segment by segment: the memory-bounded counterpart of compiling one gradient graph.
 *
 * The loss graph is split into blocks (autodiff/segments.ts). A step runs each block's forward session in
 * order and keeps only the values that cross block boundaries (the UNet's skip connections, the time
 * embedding, one activation per block); then, in reverse order, each block's VJP session re-runs that block's
 * forward from its kept inputs and returns the gradients of its inputs and of the trainable tensors it reads.
 * Each boundary value is dropped after the last session that reads it. One session only ever holds one
 * block's activations, and nothing else is alive, so peak memory is weights + boundary values + the largest
 * block's forward-and-backward, for the price of one more forward pass.
 *
 * Sessions are built once and reused every step. Weights are fed at run time from one shared store (so the
 * forward and VJP sessions of a block do not each keep a copy), and ORT's CPU arena is off for these sessions:
 * an arena keeps its high-water mark per session, which summed over every block would hold all activations
 * again.
 */
import * as ort from 'onnxruntime-node';
import type { Graph, Node } from './ir.js';
import { lowerToOnnx } from './compile.js';
import { createOnDevice, deviceFor, portableLowering, type ModelRole } from './devices.js';
import { encodeModel } from '../onnx/model.js';
import { splitForTraining, type Segment } from './autodiff/segments.js';
import type { TensorData } from './session.js';

export interface SegmentedOptions {
  loss: string;
  wrt: string[];
  blockOf: (n: Node) => string | undefined;
  threads?: number;
  role?: ModelRole;
}

interface Compiled {
  seg: Segment;
  forward: ort.InferenceSession;
  vjp?: ort.InferenceSession;
  /** Input names of each session, in the order ORT declares them. */
  forwardInputs: readonly string[];
  vjpInputs: readonly string[];
}

export class SegmentedGradient {
  private weightTensors = new Map<string, ort.Tensor>();
  /** Milliseconds of the last run's forward sweep and backward sweep, and of each block's VJP (for benches). */
  lastTimings = { forwardMs: 0, backwardMs: 0, perBlock: [] as Array<{ name: string; forwardMs: number; vjpMs: number }> };
  /** Per boundary value: the last segment (index) whose forward reads it and the first whose VJP does. */
  private lastForwardUse = new Map<string, number>();
  private firstVjpUse = new Map<string, number>();

  private constructor(
    private readonly parts: Compiled[],
    private readonly graph: Graph,
    private readonly opts: SegmentedOptions,
    readonly createSeconds: number,
  ) {
    parts.forEach((p, k) => {
      for (const b of p.seg.boundaryInputs) this.lastForwardUse.set(b.name, k);
    });
    for (let k = parts.length - 1; k >= 0; k--) {
      for (const name of parts[k]!.vjpInputs) if (!this.firstVjpUse.has(name) || this.firstVjpUse.get(name)! > k) this.firstVjpUse.set(name, k);
    }
  }

  /** Splits `forward` (a graph with a scalar-shaped loss output) into blocks and compiles both sessions of each. */
  static async create(forward: Graph, opts: SegmentedOptions): Promise<SegmentedGradient> {
    const t0 = performance.now();
    const segments = splitForTraining(forward, opts);
    const device = deviceFor(opts.role);
    const base: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', enableCpuMemArena: false };
    if (opts.threads) base.intraOpNumThreads = opts.threads;
    // Each session has its own intra-op pool; spinning pools of the sessions that just ran would fight the
    // one running now for the cores (measured: 10× slower steps on the demo model with spinning on).
    base.extra = { session: { intra_op: { allow_spinning: '0' } } };
    const open = async (g: Graph) => {
      const lowered = lowerToOnnx(g, { portable: portableLowering(device) });
      const bytes = encodeModel(lowered.model);
      const s = (await createOnDevice((o) => ort.InferenceSession.create(bytes, o), base, device)).session;
      return s;
    };
    const parts: Compiled[] = [];
    for (const seg of segments) {
      const f = await open(seg.forward);
      const v = seg.vjp ? await open(seg.vjp) : undefined;
      parts.push({ seg, forward: f, forwardInputs: f.inputNames, vjpInputs: v?.inputNames ?? [], ...(v ? { vjp: v } : {}) });
    }
    return new SegmentedGradient(parts, forward, opts, (performance.now() - t0) / 1000);
  }

  get segmentNames(): string[] {
    return this.parts.map((p) => p.seg.name);
  }

  private weight(name: string): ort.Tensor | undefined {
    let t = this.weightTensors.get(name);
    if (t) return t;
    const w = this.graph.weights.find((x) => x.name === name);
    if (!w) return undefined;
    t = new ort.Tensor('float32', w.source.load(), this.graph.values[w.value]!.shape as number[]);
    this.weightTensors.set(name, t);
    return t;
  }

  /** Bytes of the shared weight store (the one F32 copy of the frozen weights every session reads). */
  get weightBytes(): number {
    let n = 0;
    for (const t of this.weightTensors.values()) n += (t.data as Float32Array).byteLength;
    return n;
  }

  /** Loads every weight now rather than on the first step (so a step's timing and memory show steady state). */
  preload(): void {
    for (const w of this.graph.weights) this.weight(w.name);
  }

  /** Loss and `grad/<name>` for every `wrt` tensor, like a session of buildGradientGraph. */
  async run(feeds: Record<string, TensorData>): Promise<Record<string, TensorData>> {
    const given = new Map<string, ort.Tensor>();
    for (const [name, t] of Object.entries(feeds)) given.set(name, toOrt(t));
    const boundary = new Map<string, ort.Tensor>();
    const lookup = (name: string): ort.Tensor => {
      const t = boundary.get(name) ?? given.get(name) ?? this.weight(name);
      if (!t) throw new Error(`segmented training: no value for input "${name}"`);
      return t;
    };
    const keepForVjp = (name: string) => this.firstVjpUse.has(name);

    const t0 = performance.now();
    const perBlock = this.parts.map((p) => ({ name: p.seg.name, forwardMs: 0, vjpMs: 0 }));
    let loss: ort.Tensor | undefined;
    const dimsOf = new Map<string, readonly number[]>();
    for (let k = 0; k < this.parts.length; k++) {
      const p = this.parts[k]!;
      const inputs: Record<string, ort.Tensor> = {};
      for (const name of p.forwardInputs) inputs[name] = lookup(name);
      const tf = performance.now();
      const out = await p.forward.run(inputs);
      perBlock[k]!.forwardMs = performance.now() - tf;
      for (const o of p.seg.outputs) {
        const t = out[o.name]!;
        dimsOf.set(o.name, t.dims);
        if (o.name === this.opts.loss) loss = t;
        else boundary.set(o.name, t);
      }
      for (const b of p.seg.boundaryInputs) if (this.lastForwardUse.get(b.name) === k && !keepForVjp(b.name)) boundary.delete(b.name);
    }
    if (!loss) throw new Error('segmented training: no segment produced the loss');
    const t1 = performance.now();

    const cot = new Map<string, Float32Array>();
    cot.set(this.opts.loss, new Float32Array(loss.size).fill(1));
    const grads = new Map<string, Float32Array>();
    const accumulate = (into: Map<string, Float32Array>, name: string, g: Float32Array) => {
      const acc = into.get(name);
      if (!acc) into.set(name, g);
      else for (let i = 0; i < g.length; i++) acc[i] = acc[i]! + g[i]!;
    };
    for (let k = this.parts.length - 1; k >= 0; k--) {
      const p = this.parts[k]!;
      // Nothing later reads this block's outputs any more.
      for (const o of p.seg.outputs) if (!this.firstVjpUse.has(o.name) || this.firstVjpUse.get(o.name)! > k) boundary.delete(o.name);
      if (!p.vjp) continue;
      const inputs: Record<string, ort.Tensor> = {};
      for (const name of p.vjpInputs) {
        if (!name.startsWith('cotangent/')) {
          inputs[name] = lookup(name);
          continue;
        }
        const of = name.slice('cotangent/'.length);
        const dims = dimsOf.get(of)!;
        // An output no later block differentiates through has a zero cotangent.
        const c = cot.get(of) ?? new Float32Array(dims.reduce((a, b) => a * b, 1));
        inputs[name] = new ort.Tensor('float32', c, dims);
      }
      const tv = performance.now();
      const out = await p.vjp.run(inputs);
      perBlock[k]!.vjpMs = performance.now() - tv;
      for (const o of p.seg.cotangents) cot.delete(o);
      for (const name of p.seg.gradInputs) {
        const g = out[`grad/${name}`]!.data as Float32Array;
        if (p.seg.boundaryInputs.some((b) => b.name === name)) accumulate(cot, name, g);
        else accumulate(grads, name, g);
      }
      for (const name of p.vjpInputs) if (this.firstVjpUse.get(name) === k) boundary.delete(name);
    }

    this.lastTimings = { forwardMs: t1 - t0, backwardMs: performance.now() - t1, perBlock };
    const result: Record<string, TensorData> = { [this.opts.loss]: { data: loss.data as Float32Array, dims: loss.dims } };
    for (const name of this.opts.wrt) {
      const shape = (this.graph.inputs.find((i) => i.name === name) ?? this.graph.weights.find((w) => w.name === name))!;
      const dims = this.graph.values[shape.value]!.shape;
      const given = feeds[name]?.dims;
      const d = given ?? (dims as number[]);
      result[`grad/${name}`] = { data: grads.get(name) ?? new Float32Array(d.reduce((a, b) => a * b, 1)), dims: d };
    }
    return result;
  }

  async release(): Promise<void> {
    for (const p of this.parts) {
      await p.forward.release();
      await p.vjp?.release();
    }
    this.weightTensors.clear();
  }
}

function toOrt(t: TensorData): ort.Tensor {
  if (t.data instanceof Float32Array) return new ort.Tensor('float32', t.data, t.dims);
  if (t.data instanceof Int32Array) return new ort.Tensor('int32', t.data, t.dims);
  return new ort.Tensor('int64', t.data, t.dims);
}
