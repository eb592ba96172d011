/**
 * SDXL ResAdapter training graph: the trainable tensors are exactly the released SDXL key set (resampler
 * convs + every resnet norm), the loss takes SDXL's y, and ORT's gradients match float64 central differences.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { compileGraph, type CompiledSession, type Graph, type TensorData } from '../../runtime/graph/index.js';
import { evaluateReference, type RefFeed } from '../../runtime/graph/reference.js';
import { openSdxlCheckpoint, type SdxlCheckpoint } from '../../runtime/models/sdxl/checkpoint.js';
import { TorchGenerator } from '../../runtime/sampling/torch-rng.js';
import { resAdapterFileTable } from '../../runtime/training/adapter-files.js';
import { unetArchOf } from '../../runtime/training/export.js';
import { adapterLayout, initParams, type AdapterLayout, type ParamStore } from '../../runtime/training/params.js';
import { buildLossGraph, buildTrainingGraph } from '../../runtime/training/train-graph.js';
import { readJson, shared } from '../adapters/helpers.js';

const H = 1e-3;
const rms = (x: Float32Array) => Math.max(1e-2, Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length));
const CASE = shared('conformance-sdxl-next', 'resadapter-sdxl-train-shapes');

describe('SDXL ResAdapter training graph', () => {
  let ck: SdxlCheckpoint;
  let layout: AdapterLayout;
  let forward: Graph;
  let session: CompiledSession;
  let params: ParamStore;
  let feeds: Record<string, TensorData>;

  beforeAll(async () => {
    ck = openSdxlCheckpoint(shared('conformance-sdxl', 'models', 'tiny-sdxl-a.safetensors'), { numHeadChannels: 16 });
    layout = adapterLayout(ck.unet, 4, 2);
    forward = buildLossGraph(ck.unet, ck.unetConfig, layout);
    session = await compileGraph(buildTrainingGraph(ck.unet, ck.unetConfig, layout));
    const g = new TorchGenerator(5);
    params = initParams(layout, (k) => ck.unet.read(k), 1);
    for (const p of layout.params) {
      const v = params.get(p.name)!;
      const r = g.randn(v.length);
      if (p.name.startsWith('lora_up/')) v.set(r.map((x) => 0.2 * x));
      else if (p.group === 'norm') v.set(v.map((x, i) => x * (1 + 0.2 * r[i]!) + 0.05 * r[i]!));
    }
    const [b, h, wd] = [2, 8, 8];
    const adm = ck.unetConfig.admInChannels!;
    feeds = {
      x: { data: g.randn(b * 4 * h * wd), dims: [b, 4, h, wd] },
      timesteps: { data: Float32Array.from([120, 740]), dims: [b] },
      context: { data: g.randn(b * 77 * ck.unetConfig.contextDim), dims: [b, 77, ck.unetConfig.contextDim] },
      y: { data: g.randn(b * adm), dims: [b, adm] },
      target: { data: g.randn(b * 4 * h * wd), dims: [b, 4, h, wd] },
    };
    for (const p of layout.params) feeds[p.name] = { data: params.get(p.name)!, dims: p.shape };
  });

  it('targets the SDXL resampler convs and every resnet norm: the released two-file key set', () => {
    const want = readJson(join(CASE, 'case.json')).params.files as Record<string, Record<string, unknown>>;
    const table = resAdapterFileTable(unetArchOf(ck.unet), layout);
    for (const [file, keys] of Object.entries(want)) {
      // Shapes of the LoRA factors follow this test's rank; the names and the norm set do not depend on it.
      expect([...table[file]!.keys()].sort()).toEqual(Object.keys(keys).sort());
    }
    expect(forward.inputs.some((i) => i.name === 'y')).toBe(true);
  });

  it('gradients of all adapter tensors match float64 central differences (y fed)', async () => {
    const got = await session.run(feeds);
    const ref = (shift: Map<string, Float64Array>, sign: number) => {
      const f: Record<string, RefFeed> = { ...feeds };
      for (const [name, dir] of shift) f[name] = { data: Float64Array.from(params.get(name)!, (x, i) => x + sign * H * dir[i]!), dims: feeds[name]!.dims };
      return evaluateReference(forward, f).loss!.data[0]!;
    };
    expect(got.loss!.data[0]).toBeCloseTo(ref(new Map(), 0), 5);
    const g = new TorchGenerator(9);
    // Each direction is scaled to its tensor's RMS, so H is a relative step.
    const dirs = new Map(layout.params.map((p) => [p.name, Float64Array.from(g.randn(params.get(p.name)!.length), (x) => x * rms(params.get(p.name)!))]));
    let analytic = 0;
    for (const [n, dir] of dirs) {
      const grad = got[`grad/${n}`]!.data as Float32Array;
      for (let i = 0; i < dir.length; i++) analytic += grad[i]! * dir[i]!;
    }
    const numeric = (ref(dirs, 1) - ref(dirs, -1)) / (2 * H);
    expect(Math.abs(numeric)).toBeGreaterThan(1e-6);
    expect(Math.abs(analytic - numeric), `⟨grad, v⟩ = ${analytic}, central difference ${numeric}`).toBeLessThan(2e-3 * Math.abs(numeric) + 1e-7);
  });
});
