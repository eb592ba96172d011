/** Compiled sessions: overridable weights, the external-data cache path, and the in-process session cache. */
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder, compileGraph, graphHash, releaseSession, type Graph } from '../../runtime/graph/index.js';
import { evaluateReference, type RefFeed } from '../../runtime/graph/reference.js';
import { checkAgainstReference, expectClose, makeFeeds, randWeight, uniform } from './harness.js';

const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

/** A small conv → group_norm → tokens → linear net; every weight layout the compiler knows appears once. */
function convNet(tag: string, overridable: boolean): Graph {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', ['B', 4, 'H', 'W']);
  const cw = randWeight(g, `${tag}.conv.weight`, [8, 4, 3, 3], 41, { overridable });
  const cb = randWeight(g, `${tag}.conv.bias`, [8], 42);
  const gw = randWeight(g, `${tag}.norm.weight`, [8], 43, { overridable, lo: 0.5, hi: 1.5 });
  const gb = randWeight(g, `${tag}.norm.bias`, [8], 44, { overridable });
  const lw = randWeight(g, `${tag}.proj.weight`, [6, 8], 45, { overridable });
  const h = g.silu(g.groupNorm(g.conv2d(x, cw, cb, { padding: 1 }), 4, gw, gb));
  const tokens = g.reshape(g.transpose(h, [0, 2, 3, 1]), [0, -1, 8]);
  g.output('y', g.linear(tokens, lw, randWeight(g, `${tag}.proj.bias`, [6], 46)));
  return g.graph;
}

const SIZES = [{ B: 1, H: 5, W: 7 }, { B: 2, H: 6, W: 4 }];

describe('overridable weights', () => {
  it('runs with base weights by default and with overrides when given', async () => {
    const graph = convNet('ovr', true);
    const session = await compileGraph(graph);
    expect(session.overridableNames().sort()).toEqual(['ovr.conv.weight', 'ovr.norm.bias', 'ovr.norm.weight', 'ovr.proj.weight']);
    // Overrides arrive in PyTorch layout; the session must apply the same layout as for baked weights.
    const overrides = new Map<string, Float32Array>([
      ['ovr.conv.weight', uniform(8 * 4 * 9, 51, -1, 1)],
      ['ovr.norm.weight', uniform(8, 52, 0.5, 2)],
      ['ovr.norm.bias', uniform(8, 53)],
      ['ovr.proj.weight', uniform(6 * 8, 54)],
    ]);
    for (const [k, sizes] of SIZES.entries()) {
      const feeds = makeFeeds(graph, sizes, {}, k + 7);
      const base = await session.run(feeds);
      const over = await session.run(feeds, overrides);
      const wantBase = evaluateReference(graph, feeds as Record<string, RefFeed>).y!;
      const wantOver = evaluateReference(graph, feeds as Record<string, RefFeed>, overrides).y!;
      expectClose(base.y!.data as Float32Array, wantBase.data, 'base');
      expectClose(over.y!.data as Float32Array, wantOver.data, 'override');
      let maxChange = 0;
      for (let i = 0; i < wantBase.data.length; i++) maxChange = Math.max(maxChange, Math.abs(wantBase.data[i]! - wantOver.data[i]!));
      expect(maxChange).toBeGreaterThan(0.1);
      // A run after the override must go back to the base weights: no state leaks between runs.
      expectClose((await session.run(feeds)).y!.data as Float32Array, wantBase.data, 'base again');
    }
  });

  it('overrides only the named weights, the rest keep their base values', async () => {
    const graph = convNet('ovr1', true);
    const session = await compileGraph(graph);
    const overrides = new Map([['ovr1.norm.bias', new Float32Array(8).fill(3)]]);
    const feeds = makeFeeds(graph, SIZES[0]!, {}, 3);
    const got = await session.run(feeds, overrides);
    const want = evaluateReference(graph, feeds as Record<string, RefFeed>, overrides).y!;
    expectClose(got.y!.data as Float32Array, want.data, 'partial override');
  });

  it('non-overridable weights become initializers, not inputs', async () => {
    const session = await compileGraph(convNet('baked', false));
    expect(session.overridableNames()).toEqual([]);
    expect([...session.session.inputNames]).toEqual(['x']);
  });
});

describe('external weight data', () => {
  it('writes model.onnx + weights.bin to the cache dir and reuses them on the next compile', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'resflow-ext-'));
    tmpDirs.push(cacheDir);
    const graph = convNet('ext', false);
    const opts = { inlineLimitBytes: 0, cacheDir };
    const first = await checkAgainstReference(graph, SIZES, { compile: opts, label: 'external' });
    const dir = join(cacheDir, 'onnx', graphHash(graph));
    expect(readdirSync(dir).sort()).toEqual(['model.onnx', 'weights.bin']);
    const bin = statSync(join(dir, 'weights.bin'));
    const model = statSync(join(dir, 'model.onnx'));
    // Baked weights: conv [8,4,3,3], bias 8, norm 8+8, proj [6,8] + 6, each page-aligned.
    expect(bin.size).toBeGreaterThanOrEqual((288 + 8 + 8 + 8 + 48 + 6) * 4);

    await releaseSession(first.hash);
    const second = await checkAgainstReference(graph, SIZES, { compile: opts, label: 'external reused' });
    expect(second).not.toBe(first);
    const bin2 = statSync(join(dir, 'weights.bin'));
    const model2 = statSync(join(dir, 'model.onnx'));
    expect([bin2.ino, bin2.mtimeMs, model2.ino, model2.mtimeMs]).toEqual([bin.ino, bin.mtimeMs, model.ino, model.mtimeMs]);
    expect(readdirSync(dir).sort()).toEqual(['model.onnx', 'weights.bin']);
  });

  it('keeps overridable weights out of the external file', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'resflow-ext-'));
    tmpDirs.push(cacheDir);
    const graph = convNet('extovr', true);
    const opts = { inlineLimitBytes: 0, cacheDir };
    const session = await checkAgainstReference(graph, SIZES, { compile: opts, label: 'external + overridable' });
    expect(session.overridableNames()).toHaveLength(4);
    const bin = statSync(join(cacheDir, 'onnx', graphHash(graph), 'weights.bin'));
    // Only conv bias and proj bias are baked: two tensors, the second at the next 4 KiB page.
    expect(bin.size).toBe(4096 + 6 * 4);
  });

  it('inlines weights below the limit and writes nothing to the cache dir', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'resflow-inl-'));
    tmpDirs.push(cacheDir);
    await checkAgainstReference(convNet('inline', false), SIZES, { compile: { cacheDir }, label: 'inline' });
    expect(existsSync(join(cacheDir, 'onnx'))).toBe(false);
  });
});

describe('session cache', () => {
  it('returns the same session for the same graph, and for an identical rebuilt graph', async () => {
    const a = convNet('cache', false);
    const s1 = await compileGraph(a);
    const s2 = await compileGraph(a);
    expect(s2).toBe(s1);
    expect(await compileGraph(convNet('cache', false))).toBe(s1);
  });

  it('keeps separate sessions for different graphs and different lowering options', async () => {
    const g = new GraphBuilder();
    const q = g.input('q', 'float32', ['B', 'S', 4]);
    g.output('y', g.attention(q, q, q, 2));
    const fused = await compileGraph(g.graph, { fusedAttention: true });
    const plain = await compileGraph(g.graph, { fusedAttention: false });
    expect(plain).not.toBe(fused);
    expect(await compileGraph(convNet('cache-other', false))).not.toBe(await compileGraph(convNet('cache', false)));
  });

  it('compiles concurrent requests for one graph once', async () => {
    const graph = convNet('concurrent', false);
    const [a, b] = await Promise.all([compileGraph(graph), compileGraph(graph)]);
    expect(a).toBe(b);
  });

  it('builds a fresh session after release', async () => {
    const graph = convNet('release', false);
    const s1 = await compileGraph(graph);
    await releaseSession(s1.hash);
    const s2 = await compileGraph(graph);
    expect(s2).not.toBe(s1);
    await checkAgainstReference(graph, SIZES, { label: 'after release' });
  });
});
