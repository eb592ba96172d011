/**
 * Whole-model training: weights become parameters, a tiny VAE-shaped autoencoder learns, the splice of
 * encoder into decoder is exact, and a resumed run continues the uninterrupted run's trajectory bit for bit.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../runtime/graph/builder.js';
import type { Graph } from '../../runtime/graph/ir.js';
import { FullTrainer, loadFullState, saveFullState, scheduledRate, type FullTrainerOptions } from '../../runtime/shapes/full-trainer.js';
import { spliceGraphs, weightsAsInputs } from '../../runtime/shapes/graph-tools.js';
import { compileGraph } from '../../runtime/graph/session.js';
import { SeededRandom } from '../../runtime/models/synthetic/generate.js';

const dir = mkdtempSync(join(tmpdir(), 'shapes-full-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** loss = mean((tanh(x·W1ᵀ + b1)·W2ᵀ − y)²) with W1 [8, 4], b1 [8], W2 [2, 8] as weights. */
function mlpLoss(): Graph {
  const g = new GraphBuilder();
  const rng = new SeededRandom(3);
  const w = (name: string, shape: number[]) => {
    const data = rng.fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)), 0, 0.5);
    return g.weight(name, shape, { key: `test-${name}`, load: () => data });
  };
  const x = g.input('x', 'float32', ['B', 4]);
  const y = g.input('y', 'float32', ['B', 2]);
  const h = g.tanh(g.linear(x, w('w1', [8, 4]), w('b1', [8])));
  const d = g.sub(g.linear(h, w('w2', [2, 8])), y);
  g.output('loss', g.reduceMean(g.mul(d, d), [0, 1], false));
  return g.graph;
}

function batch(step: number) {
  const rng = new SeededRandom(1000 + step);
  const x = rng.fillNormal(new Float32Array(16 * 4), 0, 1);
  const y = new Float32Array(16 * 2);
  for (let i = 0; i < 16; i++) {
    y[i * 2] = Math.sin(x[i * 4]!) + 0.5 * x[i * 4 + 1]!;
    y[i * 2 + 1] = x[i * 4 + 2]! * 0.3 - x[i * 4 + 3]!;
  }
  return { x: { data: x, dims: [16, 4] }, y: { data: y, dims: [16, 2] } };
}

const opts: FullTrainerOptions = {
  adamw: { lr: 0.02, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 },
  schedule: { lr: 0.02, warmupSteps: 5, totalSteps: 60, finalFactor: 0.1 },
  gradClip: 5,
  emaDecay: 0.9,
};

describe('FullTrainer', () => {
  it('turns every weight into a parameter and learns', async () => {
    const { params } = weightsAsInputs(mlpLoss());
    expect(params.map((p) => p.name).sort()).toEqual(['b1', 'w1', 'w2']);
    const t = await FullTrainer.create(mlpLoss(), opts);
    const first = (await t.step(batch(0))).loss;
    for (let s = 1; s < 60; s++) await t.step(batch(s));
    const evalLoss = ((await t.evaluate(batch(0))).loss!.data as Float32Array)[0]!;
    expect(evalLoss).toBeLessThan(first * 0.3);
    expect(t.state.ema!.get('w1')).not.toEqual(t.state.params.get('w1'));
  });

  it('resumes on the same trajectory', async () => {
    const full = await FullTrainer.create(mlpLoss(), opts);
    for (let s = 0; s < 20; s++) await full.step(batch(s));
    const a = await FullTrainer.create(mlpLoss(), opts);
    for (let s = 0; s < 8; s++) await a.step(batch(s));
    const path = join(dir, 'state.safetensors');
    saveFullState(path, a.specs, a.state, { phase: 'test' });
    const loaded = loadFullState(path)!;
    expect(loaded.meta.phase).toBe('test');
    const b = await FullTrainer.create(mlpLoss(), opts, undefined, loaded.state);
    while (b.state.step < 20) await b.step(batch(b.state.step));
    for (const [k, v] of full.state.params) expect(b.state.params.get(k)).toEqual(v);
    for (const [k, v] of full.state.ema!) expect(b.state.ema!.get(k)).toEqual(v);
    expect(b.state.history).toEqual(full.state.history);
  });

  it('warms up linearly, then decays by a cosine to the final factor', () => {
    const s = { lr: 1, warmupSteps: 10, totalSteps: 110, finalFactor: 0.1 };
    expect(scheduledRate(s, 0)).toBeCloseTo(0.1);
    expect(scheduledRate(s, 10)).toBeCloseTo(1);
    expect(scheduledRate(s, 60)).toBeCloseTo(0.55);
    expect(scheduledRate(s, 110)).toBeCloseTo(0.1);
  });

  it("splices one graph's output into another's input exactly", async () => {
    const a = new GraphBuilder();
    const x = a.input('x', 'float32', ['B', 3]);
    a.output('h', a.mul(x, 2));
    const b = new GraphBuilder();
    const z = b.input('z', 'float32', ['B', 3]);
    b.output('out', b.add(b.mul(z, z), b.input('c', 'float32', ['B', 3])));
    const joined = spliceGraphs(a.graph, a.graph.outputs[0]!.value, b.graph, 'z', '_z');
    expect(joined.inputs.map((i) => i.name)).toEqual(['x', 'c']);
    const s = await compileGraph(joined);
    const r = await s.run({ x: { data: Float32Array.from([1, 2, 3]), dims: [1, 3] }, c: { data: Float32Array.from([1, 1, 1]), dims: [1, 3] } });
    expect([...(r.out!.data as Float32Array)]).toEqual([5, 17, 37]);
  });
});
