/**
 * Checkpointed (segmented) training: the UNet split into blocks, each block's forward and VJP in their own
 * sessions. It must give the plain gradient graph's loss and gradients, on the demo model through the
 * trainer and on the conformance SD1.5 UNet through the generic splitter, and a trainer using it must learn.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { compileGraph, type TensorData } from '../../runtime/graph/index.js';
import { buildGradientGraph } from '../../runtime/graph/autodiff/index.js';
import { splitForTraining } from '../../runtime/graph/autodiff/segments.js';
import { SegmentedGradient } from '../../runtime/graph/segmented-session.js';
import { TorchGenerator } from '../../runtime/sampling/torch-rng.js';
import { FixedBatchSource } from '../../runtime/training/batches.js';
import { adapterLayout, type AdapterLayout } from '../../runtime/training/params.js';
import { buildLossGraph, unetBlocks } from '../../runtime/training/train-graph.js';
import { ResAdapterTrainer } from '../../runtime/training/trainer.js';
import { TRAINABLE, tinyUnetFeeds, tinyUnetLossGraph } from '../graph/autodiff-unet-fixture.js';
import { demoModel, maxAbsDiff, randomMicro, settings, type DemoModel } from './helpers.js';

const relDiff = (a: Float32Array, b: Float32Array) => maxAbsDiff(a, b) / a.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-12);

/** Moves the adapter away from its initial point (LoRA up = 0 would zero every LoRA-down gradient). */
function perturb(trainer: ResAdapterTrainer, seed: number): void {
  const g = new TorchGenerator(seed);
  for (const p of trainer.layout.params) {
    const v = trainer.state.params.get(p.name)!;
    const r = g.randn(v.length);
    if (p.name.startsWith('lora_up/')) v.set(r.map((x) => 0.2 * x));
    else if (p.group === 'norm') v.set(v.map((x, i) => x * (1 + 0.2 * r[i]!) + 0.05 * r[i]!));
  }
}

describe('segmented training (recomputation per UNet block)', () => {
  let dm: DemoModel;
  let layout: AdapterLayout;

  beforeAll(async () => {
    dm = await demoModel('resflow-segmented-');
    layout = adapterLayout(dm.model.weights, 4, 2);
  });

  it('splits the demo UNet into one segment per block, each reading only its own block, and every block with a trainable tensor gets a VJP', () => {
    const forward = buildLossGraph(dm.model.weights, dm.model.config, layout);
    const blockOf = unetBlocks(forward);
    const segs = splitForTraining(forward, { loss: 'loss', wrt: layout.params.map((p) => p.name), blockOf });
    const names = segs.map((s) => s.name);
    const inputs = dm.model.config.inputBlocks.length;
    expect(names).toContain('time_embed');
    for (let i = 0; i < inputs; i++) expect(names).toContain(`input_blocks.${i}`);
    for (let j = 0; j < dm.model.config.outputTransformerDepth.length; j++) expect(names).toContain(`output_blocks.${j}`);
    expect(names[names.length - 1]).toBe('out');
    for (const s of segs) {
      const blocks = new Set(s.forward.nodes.map(blockOf).filter((b) => b !== undefined));
      expect([...blocks], s.name).toEqual([s.name]);
    }
    // Every trainable tensor is differentiated by exactly the segment that reads it.
    const owners = new Map<string, string[]>();
    for (const s of segs) for (const n of s.gradInputs) if (!n.startsWith('v')) owners.set(n, [...(owners.get(n) ?? []), s.name]);
    expect([...owners.keys()].sort()).toEqual(layout.params.map((p) => p.name).sort());
    for (const [name, o] of owners) expect(o.length, name).toBe(1);
    // Blocks before the first trainable tensor need no backward at all.
    for (const name of ['time_embed', 'input_blocks.0']) expect(segs.find((s) => s.name === name)!.vjp, name).toBeUndefined();
  });

  it('gives the plain gradient graph loss and adapter gradients through the trainer (batch 2, non-square)', async () => {
    const plain = await ResAdapterTrainer.create(dm.model, layout, settings({ recompute: false }));
    const seg = await ResAdapterTrainer.create(dm.model, layout, settings({ recompute: true }));
    expect(seg.session).toBeInstanceOf(SegmentedGradient);
    perturb(plain, 5);
    for (const [k, v] of plain.state.params) seg.state.params.set(k, Float32Array.from(v));
    const mb = randomMicro(3, 2, 6, 10);
    const [a, b] = [await plain.lossAndGrads(mb), await seg.lossAndGrads(mb)];
    expect(Math.abs(a.loss - b.loss) / a.loss).toBeLessThan(1e-5);
    expect(a.loss).toBeGreaterThan(0);
    for (const p of layout.params) {
      const x = a.grads.get(p.name)!;
      expect(x.some((v) => v !== 0), p.name).toBe(true);
      expect(relDiff(x, b.grads.get(p.name)!), p.name).toBeLessThan(1e-4);
    }
    // A second run reuses the sessions and the freed boundary values: the same result again.
    const c = await seg.lossAndGrads(mb);
    expect(c.loss).toBe(b.loss);
    for (const p of layout.params) expect(maxAbsDiff(c.grads.get(p.name)!, b.grads.get(p.name)!), p.name).toBe(0);
  });

  it('with recomputation on, the trainer still trains: the loss falls step after step, on the plain trainer\'s trajectory', async () => {
    const opts = settings({ batchSize: 1, microBatch: 1, adamw: { ...settings().adamw, lr: 5e-2 } });
    const seg = await ResAdapterTrainer.create(dm.model, layout, { ...opts, recompute: true });
    const plain = await ResAdapterTrainer.create(dm.model, layout, { ...opts, recompute: false });
    const mb = randomMicro(8, 1, 8, 8, [500]);
    const initial = await seg.evaluate(mb);
    const src = new FixedBatchSource(mb);
    const losses: number[] = [];
    for (let k = 0; k < 6; k++) {
      const m = await seg.trainStep(src);
      losses.push(m.loss);
      const p = await plain.trainStep(src);
      expect(Math.abs(m.loss - p.loss) / p.loss, `step ${k + 1}`).toBeLessThan(1e-4);
    }
    const final = await seg.evaluate(mb);
    const trail = [...losses, final];
    expect(losses[0]).toBeCloseTo(initial, 5);
    for (let k = 1; k < trail.length; k++) expect(trail[k], trail.map((l) => l.toFixed(5)).join(' → ')).toBeLessThan(trail[k - 1]!);
    expect(final).toBeLessThan(0.99 * initial);
    for (const p of layout.params) expect(relDiff(plain.state.params.get(p.name)!, seg.state.params.get(p.name)!), p.name).toBeLessThan(1e-3);
  });

  it('matches buildGradientGraph on the conformance SD1.5 UNet with frozen-weight targets (weights as wrt)', async () => {
    const forward = tinyUnetLossGraph();
    const plain = await compileGraph(buildGradientGraph(forward, { loss: 'loss', wrt: TRAINABLE }));
    const seg = await SegmentedGradient.create(forward, { loss: 'loss', wrt: TRAINABLE, blockOf: unetBlocks(forward) });
    expect(seg.segmentNames.length).toBeGreaterThan(8);
    const feeds: Record<string, TensorData> = tinyUnetFeeds(2, 16, 24, 3);
    const a = await plain.run(feeds);
    const b = await seg.run(feeds);
    expect(Math.abs((a.loss!.data[0] as number) - (b.loss!.data[0] as number)) / (a.loss!.data[0] as number)).toBeLessThan(1e-5);
    for (const name of TRAINABLE) {
      const x = a[`grad/${name}`]!.data as Float32Array;
      expect(x.some((v) => v !== 0), name).toBe(true);
      expect(relDiff(x, b[`grad/${name}`]!.data as Float32Array), name).toBeLessThan(1e-4);
    }
    await seg.release();
  });
});
