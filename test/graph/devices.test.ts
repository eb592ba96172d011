import { afterEach, describe, expect, it } from 'vitest';
import { GraphBuilder, compileGraph, type Graph } from '../../runtime/graph/index.js';
import { lowerToOnnx } from '../../runtime/graph/compile.js';
import { deviceFor, failedProviders, providersFor, resetProviderFailures, setDevicePolicy } from '../../runtime/graph/devices.js';
import { evaluateReference, type RefFeed } from '../../runtime/graph/reference.js';
import { expectClose, makeFeeds, randWeight } from './harness.js';

/** Attention + every activation the lowering fuses on the CPU. */
function net(tag: string): Graph {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', ['B', 'S', 16]);
  const q = g.linear(x, randWeight(g, `${tag}.q`, [16, 16], 1));
  const k = g.linear(x, randWeight(g, `${tag}.k`, [16, 16], 2));
  const v = g.linear(x, randWeight(g, `${tag}.v`, [16, 16], 3));
  const a = g.attention(q, k, v, 2);
  g.output('y', g.add(g.add(g.silu(a), g.gelu(a)), g.quickGelu(a)));
  return g.graph;
}

afterEach(() => {
  setDevicePolicy({ device: 'cpu', overrides: {} });
  resetProviderFailures();
});

describe('execution devices', () => {
  it('orders providers per platform, and the CPU needs none', () => {
    expect(providersFor('cpu')).toEqual([]);
    expect(providersFor('webgpu')).toEqual(['webgpu']);
    expect(providersFor('auto', 'win32')).toEqual(['dml', 'cuda', 'webgpu']);
    expect(providersFor('auto', 'darwin')).toEqual(['coreml', 'webgpu']);
    expect(providersFor('auto', 'linux')).toEqual(['cuda', 'webgpu']);
  });

  it('per-model overrides pick the device of each role', () => {
    setDevicePolicy({ device: 'webgpu', overrides: { vae: 'cpu' } });
    expect(deviceFor('unet')).toBe('webgpu');
    expect(deviceFor('vae')).toBe('cpu');
    expect(deviceFor(undefined)).toBe('webgpu');
  });

  it('lowers to standard ONNX ops for non-CPU devices, with the same numbers', async () => {
    const graph = net('portable');
    const fusedOps = lowerToOnnx(graph).model.graph.nodes.filter((n) => n.domain === 'com.microsoft');
    expect(fusedOps.length).toBeGreaterThan(0);
    expect(lowerToOnnx(graph, { portable: true }).model.graph.nodes.filter((n) => n.domain === 'com.microsoft')).toEqual([]);
    const feeds = makeFeeds(graph, { B: 2, S: 5 }, {}, 9);
    const want = evaluateReference(graph, feeds as Record<string, RefFeed>).y!;
    const cpu = await compileGraph(graph);
    const portable = await compileGraph(graph, { portable: true });
    expect(portable).not.toBe(cpu);
    expectClose((await cpu.run(feeds)).y!.data as Float32Array, want.data, 'fused');
    expectClose((await portable.run(feeds)).y!.data as Float32Array, want.data, 'portable');
  });

  it('falls back to the CPU with one warning naming a provider that cannot start', async () => {
    const warnings: string[] = [];
    // CUDA's libraries are not installed on a CPU-only machine; WebGPU finds no adapter.
    for (const device of ['cuda', 'webgpu'] as const) {
      setDevicePolicy({ device, overrides: {} }, (m) => warnings.push(m));
      const graph = net(`fallback-${device}`);
      const session = await compileGraph(graph, { role: 'unet' });
      const feeds = makeFeeds(graph, { B: 1, S: 3 }, {}, 4);
      expectClose((await session.run(feeds)).y!.data as Float32Array, evaluateReference(graph, feeds as Record<string, RefFeed>).y!.data, device);
      expect(failedProviders().has(device)).toBe(true);
      // A second session does not try (and warn about) the same provider again.
      await compileGraph(net(`fallback-${device}-again`), { role: 'unet' });
    }
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/execution provider "cuda" is not available \(.+\); running on the CPU instead/);
    expect(warnings[1]).toMatch(/execution provider "webgpu" is not available \(.+\); running on the CPU instead/);
  });
});
