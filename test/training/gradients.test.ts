/**
 * Gradient checks of the training graph: the derivatives ORT computes for the LoRA factors and the
 * GroupNorm affines (through W + (alpha/r)·up·down and the whole UNet) against central differences of the
 * float64 reference interpreter, with and without activation recomputation.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { compileGraph, type CompiledSession, type Graph, type TensorData } from '../../runtime/graph/index.js';
import { evaluateReference, type RefFeed } from '../../runtime/graph/reference.js';
import { TorchGenerator } from '../../runtime/sampling/torch-rng.js';
import { adapterLayout, initParams, type AdapterLayout, type ParamStore } from '../../runtime/training/params.js';
import { buildLossGraph, buildTrainingGraph } from '../../runtime/training/train-graph.js';
import { demoModel, maxAbsDiff, type DemoModel } from './helpers.js';

const H = 1e-3;
const rms = (x: Float32Array) => Math.max(1e-2, Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length));

describe('training graph: gradients of the adapter parameters', () => {
  let dm: DemoModel;
  let layout: AdapterLayout;
  let forward: Graph;
  let session: CompiledSession;
  let params: ParamStore;
  let feeds: Record<string, TensorData>;

  beforeAll(async () => {
    dm = await demoModel();
    const w = dm.model.weights;
    layout = adapterLayout(w, 4, 2);
    forward = buildLossGraph(w, dm.model.config, layout);
    session = await compileGraph(buildTrainingGraph(w, dm.model.config, layout));
    // Away from the initial point (LoRA up = 0 would zero every LoRA-down gradient).
    const g = new TorchGenerator(5);
    params = initParams(layout, (k) => w.read(k), 1);
    for (const p of layout.params) {
      const v = params.get(p.name)!;
      const r = g.randn(v.length);
      if (p.name.startsWith('lora_up/')) v.set(r.map((x) => 0.2 * x));
      else if (p.group === 'norm') v.set(v.map((x, i) => x * (1 + 0.2 * r[i]!) + 0.05 * r[i]!));
    }
    const [b, h, wd] = [2, 6, 10];
    feeds = {
      x: { data: g.randn(b * 4 * h * wd), dims: [b, 4, h, wd] },
      timesteps: { data: Float32Array.from([120, 740]), dims: [b] },
      context: { data: g.randn(b * 77 * 64), dims: [b, 77, 64] },
      target: { data: g.randn(b * 4 * h * wd), dims: [b, 4, h, wd] },
    };
    for (const p of layout.params) feeds[p.name] = { data: params.get(p.name)!, dims: p.shape };
  });

  const refLoss = (shift: Map<string, Float64Array>, sign: number) => {
    const f: Record<string, RefFeed> = { ...feeds };
    for (const [name, dir] of shift) {
      const base = params.get(name)!;
      f[name] = { data: Float64Array.from(base, (x, i) => x + sign * H * dir[i]!), dims: feeds[name]!.dims };
    }
    return evaluateReference(forward, f).loss!.data[0]!;
  };

  it('directional derivatives match float64 central differences (each LoRA factor, the norms, everything at once)', async () => {
    const got = await session.run(feeds);
    expect(got.loss!.data[0]).toBeCloseTo(refLoss(new Map(), 0), 5);
    const g = new TorchGenerator(9);
    const groups: string[][] = [
      ...layout.lora.flatMap((m) => [[m.down], [m.up]]),
      layout.params.filter((p) => p.group === 'norm').map((p) => p.name),
      layout.params.map((p) => p.name),
    ];
    for (const names of groups) {
      // Each direction is scaled to its tensor's RMS, so H is a relative step.
      const dirs = new Map(names.map((n) => [n, Float64Array.from(g.randn(params.get(n)!.length), (x) => x * rms(params.get(n)!))]));
      let analytic = 0;
      for (const [n, dir] of dirs) {
        const grad = got[`grad/${n}`]!.data as Float32Array;
        expect(grad.length).toBe(dir.length);
        for (let i = 0; i < dir.length; i++) analytic += grad[i]! * dir[i]!;
      }
      const numeric = (refLoss(dirs, 1) - refLoss(dirs, -1)) / (2 * H);
      const what = names.length === 1 ? names[0]! : `${names.length} tensors`;
      expect(Math.abs(analytic - numeric), `${what}: ⟨grad, v⟩ = ${analytic}, central difference ${numeric}`).toBeLessThan(2e-3 * Math.abs(numeric) + 1e-7);
    }
  });

  it('recomputing activations in the backward pass gives the same loss and gradients', async () => {
    const rec = await compileGraph(buildTrainingGraph(dm.model.weights, dm.model.config, layout, { recompute: true }));
    const [a, b] = [await session.run(feeds), await rec.run(feeds)];
    for (const name of ['loss', ...layout.params.map((p) => `grad/${p.name}`)]) {
      const x = a[name]!.data as Float32Array;
      const scale = x.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-12);
      expect(maxAbsDiff(x, b[name]!.data as Float32Array) / scale, name).toBeLessThan(1e-5);
    }
  });

  it('binds every down/upsampler conv and resnet norm of the UNet, and nothing else', () => {
    expect(layout.lora.map((m) => m.module)).toEqual(['input_blocks.2.0.op', 'output_blocks.1.2.conv']);
    expect(layout.norms.every((k) => /\.(in|out)_layers\.0\.(weight|bias)$/.test(k))).toBe(true);
    // Two levels, one resnet each on the way down, two on the way up, plus the middle's two: 6 resnets × 2 norms × 2.
    expect(layout.norms.length).toBe(24 + 8);
    const inputs = forward.inputs.map((i) => i.name);
    expect(inputs.filter((n) => !layout.params.some((p) => p.name === n)).sort()).toEqual(['context', 'target', 'timesteps', 'x']);
  });
});
