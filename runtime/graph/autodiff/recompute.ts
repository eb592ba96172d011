import type { T } from '../builder.js';
import type { Graph, Node } from '../ir.js';
import type { GraphExtender } from './extend.js';

/**
 * Activation recomputation ("gradient checkpointing") per block.
 *
 * Without it, every forward value a backward rule reads stays alive in ORT from the moment the forward
 * computes it until the backward pass consumes it, so peak memory holds nearly all activations of the
 * network at once. With it, a value produced inside a block and consumed only inside that block (an
 * "internal" value) is never read by the backward pass: the backward re-runs the block's forward nodes from
 * the block's inputs (the checkpoints, which are kept) right before it needs them, and ORT frees the
 * originals as soon as the forward has used them. Peak memory becomes roughly the checkpoints plus one
 * block's activations, for the price of running each block's forward twice.
 *
 * ORT has no control dependencies and schedules a node as soon as a depth-first walk from the outputs
 * reaches it, so a recomputation fed only by checkpoints could run during the forward pass and keep its
 * result alive as long as before. Each block's recomputation therefore reads its checkpoints through a
 * gate, `checkpoint + 0·dy[0]`, where dy is the gradient arriving at the block: the data dependency forces
 * the recomputation to wait for the backward pass to reach the block.
 *
 * Shape-only references (GradRule `ref`) keep pointing at the original values: ORT runs those Shape() nodes
 * early, so they do not extend the originals' lifetime. test/graph/autodiff-memory.ts measures the effect.
 */
export class Recomputer {
  private producer = new Map<number, Node>();
  private consumers = new Map<number, Node[]>();
  private copies = new Map<number, T>();
  private gates = new Map<string, T>();
  private gated = new Map<string, T>();
  private constant: Set<number>;
  private kept: Set<number>;

  constructor(
    private readonly ext: GraphExtender,
    graph: Graph,
    forward: readonly Node[],
    private readonly blockOf: (n: Node) => string | undefined,
    keep: Iterable<number>,
  ) {
    for (const n of forward) {
      this.producer.set(n.outputs[0]!, n);
      for (const i of n.inputs) {
        const list = this.consumers.get(i);
        if (list) list.push(n);
        else this.consumers.set(i, [n]);
      }
    }
    this.constant = new Set([...graph.consts.map((c) => c.value), ...graph.weights.map((w) => w.value)]);
    this.kept = new Set(keep);
  }

  /** The block that owns `id` if only that block reads it (and it is not kept, e.g. a graph output). */
  blockOfInternal(id: number): string | undefined {
    const p = this.producer.get(id);
    if (!p || this.kept.has(id)) return undefined;
    const b = this.blockOf(p);
    if (b === undefined) return undefined;
    return (this.consumers.get(id) ?? []).every((c) => this.blockOf(c) === b) ? b : undefined;
  }

  /** The value the backward pass should read for forward value `id`, given the gradient `dy` now flowing. */
  value(id: number, dy: T): T {
    const b = this.blockOfInternal(id);
    return b === undefined ? this.ext.handle(id) : this.copy(id, b, dy);
  }

  private copy(id: number, block: string, dy: T): T {
    const done = this.copies.get(id);
    if (done) return done;
    const n = this.producer.get(id)!;
    const inputs = n.inputs.map((i) => (this.blockOfInternal(i) === block ? this.copy(i, block, dy) : this.checkpoint(i, block, dy)).id);
    const t = this.ext.clone(n, inputs, `recompute/${n.scope ?? ''}`);
    this.copies.set(id, t);
    return t;
  }

  private checkpoint(id: number, block: string, dy: T): T {
    const h = this.ext.handle(id);
    // Initializers cost nothing to keep; a gated scalar would change rank.
    if (this.constant.has(id) || h.type !== 'float32' || h.rank === 0) return h;
    const key = `${block}\u0000${id}`;
    let t = this.gated.get(key);
    if (!t) {
      t = this.ext.labelled(`recompute/${block}`, () => this.ext.g.add(h, this.gate(block, dy)));
      this.gated.set(key, t);
    }
    return t;
  }

  private gate(block: string, dy: T): T {
    let z = this.gates.get(block);
    if (!z) {
      const { g } = this.ext;
      z = this.ext.labelled(`recompute/${block}`, () => g.mul(g.slice(g.reshape(dy, [-1]), 0, 0, 1), 0));
      this.gates.set(block, z);
    }
    return z;
  }
}
