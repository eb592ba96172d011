/**
 * The training loop on the demo model and the generated demo dataset: it learns (overfits a fixed batch to
 * a reachable target), a resumed run reproduces an uninterrupted one bit for bit, an interrupt keeps its
 * checkpoint, the norms stay frozen on batches at or below the base resolution, and accumulation matches a
 * full batch.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeText } from '../../nodes/core/conditioning-nodes.js';
import type { ClipValue } from '../../nodes/core/types.js';
import { clipValueOf } from '../../nodes/core/clip-value.js';
import { modelFamily } from '../../runtime/models/families/registry.js';
import { applyResAdapter } from '../../runtime/pipeline/adapter-loaders.js';
import { PatchedClip, PatchedUnet } from '../../runtime/pipeline/patched-model.js';
import { processLatentIn } from '../../runtime/sampling/model-sampling.js';
import { DatasetBatchSource, FixedBatchSource, type MicroBatch } from '../../runtime/training/batches.js';
import { parseAspects, RECIPE_ASPECTS } from '../../runtime/training/buckets.js';
import { scanDataset } from '../../runtime/training/dataset.js';
import { ensureDemoDataset } from '../../runtime/training/demo-dataset.js';
import { EncodeCache } from '../../runtime/training/encode-cache.js';
import { readResAdapterParams } from '../../runtime/training/export.js';
import { adapterLayout, initParams } from '../../runtime/training/params.js';
import { trainResAdapter } from '../../runtime/training/run.js';
import { loadTrainingState, STATE_FILE } from '../../runtime/training/state.js';
import { ResAdapterTrainer } from '../../runtime/training/trainer.js';
import { demoModel, maxAbsDiff, settings, type DemoModel } from './helpers.js';

describe('ResAdapter training on the demo model', () => {
  let dm: DemoModel;
  let source: DatasetBatchSource;

  beforeAll(async () => {
    dm = await demoModel();
    const folder = await ensureDemoDataset(join(dm.dir, 'input'));
    const dataset = await scanDataset({
      folder,
      resolutions: [64, 128, 192],
      baseResolution: 128,
      aspects: parseAspects(RECIPE_ASPECTS),
      bucketStep: 32,
      onProblem: 'error',
      cacheDir: join(dm.dir, 'cache'),
    });
    const clip: ClipValue = clipValueOf(modelFamily('sd1'), [PatchedClip.of(dm.sd1.clip)], dm.sd1.tokenizer);
    const cache = await EncodeCache.create(join(dm.dir, 'cache'), {
      encodeImage: async (img) => {
        const z = await dm.sd1.vae.encode(img);
        return { data: z.data, dims: [...z.shape] };
      },
      encodeText: async (caption) => {
        const c = await encodeText(clip, caption);
        return { data: c.context, dims: [...c.contextShape] };
      },
    });
    source = new DatasetBatchSource(dataset, cache, { seed: 11, numTimesteps: 1000, toModel: (z) => processLatentIn(dm.sd1.sampling.latentFormat, z) });
  });

  it('overfits a fixed dataset batch: the loss falls by more than half toward a reachable adapter', async () => {
    const layout = adapterLayout(dm.model.weights, 4, 2);
    const trainer = await ResAdapterTrainer.create(dm.model, layout, settings());
    const batch = await (await source.batch(0, 2)).load(0, 2);
    // The target: what the UNet predicts with the demo ResAdapter applied through ApplyResAdapter's merge.
    const teacher = applyResAdapter(PatchedUnet.of(dm.sd1.unet), dm.paths.resadapter, 1).model;
    const eps = await dm.sd1.unet.eps({ data: trainer.noisy(batch), dims: batch.dims }, batch.timesteps, { data: batch.context, dims: batch.contextDims }, { overrides: teacher.overrides()! });
    const fixed: MicroBatch = { ...batch, target: eps.data as Float32Array };

    // The training graph's W + (alpha/r)·up·down and norm inputs reproduce the inference-time merge exactly.
    const start = new Map(trainer.state.params);
    for (const [k, v] of readResAdapterParams(dm.paths.resadapter, dm.model.weights, layout, start)) trainer.state.params.set(k, v);
    const atTeacher = await trainer.evaluate(fixed);
    for (const [k, v] of start) trainer.state.params.set(k, v);
    const initial = await trainer.evaluate(fixed);
    expect(initial).toBeGreaterThan(0);
    expect(atTeacher).toBeLessThan(1e-6 * initial);

    const src = new FixedBatchSource(fixed);
    for (let k = 0; k < 60; k++) await trainer.trainStep(src);
    const final = await trainer.evaluate(fixed);
    expect(final, `loss ${initial} → ${final}`).toBeLessThan(0.5 * initial);
  });

  it('resumes after an interrupt to exactly the weights of an uninterrupted run', async () => {
    const fixed = await source.fixedBatches(2);
    // The fixed batches are the same at every call: one per training resolution, timesteps spread evenly.
    expect(fixed.map((f) => Math.round(Math.sqrt(f.batch.dims[2] * f.batch.dims[3])) * 8)).toEqual([64, 192]);
    expect(await source.fixedBatches(2)).toEqual(fixed);
    expect([...fixed[0]!.batch.timesteps]).toEqual([250, 750]);
    const validation = { every: 2, batches: fixed };
    const common = { model: dm.model, settings: settings({ batchSize: 2, microBatch: 1, warmupSteps: 2, gradClip: 1, adamw: { ...settings().adamw, lr: 1e-3 } }), rank: 4, alpha: 2, steps: 6, source, checkpointEvery: 2, resume: true, validation };
    const straight = await trainResAdapter({ ...common, runDir: join(dm.dir, 'run-a') });
    expect(straight.status).toBe('done');

    const runDir = join(dm.dir, 'run-b');
    const ctl = new AbortController();
    const cut = await trainResAdapter({ ...common, runDir, signal: ctl.signal, onStep: (m) => (m.step === 3 ? ctl.abort() : undefined) });
    expect(cut.status).toBe('interrupted');
    const kept = loadTrainingState(join(runDir, STATE_FILE), cut.trained.layout);
    expect(kept.step).toBe(3);

    const resumed = await trainResAdapter({ ...common, runDir });
    expect(resumed.status).toBe('done');
    expect(resumed.startedAt).toBe(3);
    const a = straight.trainer.state;
    const b = resumed.trainer.state;
    expect(b.step).toBe(6);
    // Both norm-updating and LoRA-only batches occurred, so the per-group step counters were exercised.
    expect(a.adam.steps.norm).toBeGreaterThan(0);
    expect(a.adam.steps.norm).toBeLessThan(6);
    expect(b.adam.steps).toEqual(a.adam.steps);
    expect(b.history).toEqual(a.history);
    // The fixed-batch curve: measured before training and every 2 steps; the resumed run continues the same curve.
    expect(straight.trained.validation.map(([s]) => s)).toEqual([0, 2, 4, 6]);
    expect(resumed.trained.validation).toEqual(straight.trained.validation);
    expect(straight.trained.validation.every(([, l]) => Number.isFinite(l) && l > 0)).toBe(true);
    for (const p of straight.trained.layout.params) {
      expect(b.params.get(p.name), p.name).toEqual(a.params.get(p.name));
      expect(b.adam.m.get(p.name), p.name).toEqual(a.adam.m.get(p.name));
      expect(b.adam.v.get(p.name), p.name).toEqual(a.adam.v.get(p.name));
    }
    // A finished run resumed again trains nothing and hands back the same weights.
    const again = await trainResAdapter({ ...common, runDir });
    expect(again.trained.steps).toBe(6);
    expect(again.trained.params.get(straight.trained.layout.params[1]!.name)).toEqual(a.params.get(straight.trained.layout.params[1]!.name));
    expect(existsSync(join(dm.dir, 'run-a', STATE_FILE))).toBe(true);
  });

  it('starts from an existing ResAdapter when asked (fine-tuning), unless resuming', async () => {
    const run = await trainResAdapter({
      model: dm.model,
      settings: settings({ adamw: { ...settings().adamw, lr: 0 } }),
      rank: 4,
      alpha: 2,
      steps: 1,
      source,
      checkpointEvery: 0,
      resume: false,
      startFrom: { lora: join(dm.paths.resadapter, 'pytorch_lora_weights.safetensors'), norm: join(dm.paths.resadapter, 'diffusion_pytorch_model.safetensors') },
    });
    const want = readResAdapterParams(dm.paths.resadapter, dm.model.weights, run.trained.layout, run.trained.params);
    for (const [k, v] of want) expect(run.trained.params.get(k), k).toEqual(v);
    expect(run.trained.params.get(run.trained.layout.lora[0]!.up)!.some((v) => v !== 0)).toBe(true);
  });

  it('updates the norms only on batches above the base resolution', async () => {
    const layout = adapterLayout(dm.model.weights, 4, 2);
    const trainer = await ResAdapterTrainer.create(dm.model, layout, settings());
    const base = initParams(layout, (k) => dm.model.weights.read(k), 7);
    const batch = await (await source.batch(1, 2)).load(0, 2);
    const low = new FixedBatchSource(batch, false);
    for (let k = 0; k < 3; k++) expect((await trainer.trainStep(low)).normsUpdated).toBe(false);
    for (const p of layout.params) {
      if (p.group === 'norm') expect(trainer.state.params.get(p.name), p.name).toEqual(base.get(p.name));
      else if (p.name.startsWith('lora_up/')) expect(trainer.state.params.get(p.name)!.some((v) => v !== 0)).toBe(true);
    }
    expect(trainer.state.adam.steps).toEqual({ lora: 3, norm: 0 });
    await trainer.trainStep(new FixedBatchSource(batch, true));
    expect(trainer.state.adam.steps).toEqual({ lora: 4, norm: 1 });
    expect(layout.params.filter((p) => p.group === 'norm').some((p) => maxAbsDiff(trainer.state.params.get(p.name)!, base.get(p.name)!) > 0)).toBe(true);
  });

  it('normLrScale scales the norms\' step and leaves the LoRA\'s alone', async () => {
    const layout = adapterLayout(dm.model.weights, 4, 2);
    const batch = new FixedBatchSource(await (await source.batch(1, 2)).load(0, 2), true);
    const full = await ResAdapterTrainer.create(dm.model, layout, settings());
    const tenth = await ResAdapterTrainer.create(dm.model, layout, settings({ normLrScale: 0.1 }));
    const start = new Map([...full.state.params].map(([k, v]) => [k, v.slice()]));
    await full.trainStep(batch);
    await tenth.trainStep(batch);
    let moved = 0;
    for (const p of layout.params) {
      const [a, b, s0] = [full.state.params.get(p.name)!, tenth.state.params.get(p.name)!, start.get(p.name)!];
      for (let i = 0; i < a.length; i++) {
        const [da, db] = [a[i]! - s0[i]!, b[i]! - s0[i]!];
        if (p.group === 'norm') {
          expect(Math.abs(db - 0.1 * da), p.name).toBeLessThanOrEqual(1e-6 + 1e-3 * Math.abs(da));
          if (da !== 0) moved++;
        } else expect(db, p.name).toBe(da);
      }
    }
    expect(moved).toBeGreaterThan(0);
  });

  it('gradient accumulation over micro-batches gives the full batch gradient', async () => {
    const layout = adapterLayout(dm.model.weights, 4, 2);
    const whole = await ResAdapterTrainer.create(dm.model, layout, settings({ batchSize: 4, microBatch: 4 }));
    const split = await ResAdapterTrainer.create(dm.model, layout, settings({ batchSize: 4, microBatch: 1 }));
    const [a, b] = [await whole.trainStep(source), await split.trainStep(source)];
    expect(b.resolution).toBe(a.resolution);
    expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-5 * a.loss);
    for (const p of layout.params) {
      const x = whole.lastGrads!.get(p.name)!;
      const scale = x.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-20);
      expect(maxAbsDiff(x, split.lastGrads!.get(p.name)!) / scale, p.name).toBeLessThan(1e-4);
    }
  });
});
