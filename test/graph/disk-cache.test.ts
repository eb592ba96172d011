/**
 * The compiled-model cache on disk: a size budget with least-recently-used eviction that never removes what an
 * open session uses, `resflow cache [--clear]`, and cache identity that follows the model file's content.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../runtime/graph/builder.js';
import { cacheBudgetBytes, clearCache, enforceCacheBudget, isCacheEntryPinned, listCacheEntries } from '../../runtime/graph/disk-cache.js';
import { compileGraph, graphHash, releaseSession } from '../../runtime/graph/session.js';
import { WeightSet } from '../../runtime/models/weights.js';
import { SafetensorsFile, writeSafetensors } from '../../runtime/safetensors/index.js';
import { REPO } from '../nodes/helpers.js';

const saved = process.env.RESFLOW_CACHE_BUDGET_GB;
afterEach(() => {
  if (saved === undefined) delete process.env.RESFLOW_CACHE_BUDGET_GB;
  else process.env.RESFLOW_CACHE_BUDGET_GB = saved;
});

/** A fake entry of `bytes` bytes last used `age` seconds ago. */
function entry(cacheDir: string, hash: string, bytes: number, age: number): void {
  const dir = join(cacheDir, 'onnx', hash);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'weights.bin'), new Uint8Array(bytes));
  const t = new Date(Date.now() - age * 1000);
  utimesSync(dir, t, t);
}

function linearGraph(seed: number, size = 512) {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', ['B', size]);
  const w = g.weight(`w${seed}`, [size, size], { key: `disk-cache-test#${seed}`, load: () => Float32Array.from({ length: size * size }, (_, i) => ((i * (seed + 5)) % 13) / 13 - 0.5) });
  g.output('y', g.linear(x, w));
  return g.graph;
}

describe('cache budget', () => {
  it('removes least recently used entries first until the cache fits', () => {
    const dir = mkdtempSync(join(tmpdir(), 'resflow-cache-'));
    entry(dir, 'old', 3000, 300);
    entry(dir, 'mid', 3000, 200);
    entry(dir, 'new', 3000, 100);
    expect(listCacheEntries(dir).map((e) => e.hash)).toEqual(['new', 'mid', 'old']);
    const r = enforceCacheBudget(dir, 7000);
    expect(r.removed.map((e) => e.hash)).toEqual(['old']);
    expect(existsSync(join(dir, 'onnx', 'old'))).toBe(false);
    expect(listCacheEntries(dir).map((e) => e.hash)).toEqual(['new', 'mid']);
    expect(r.bytes).toBe(6000);
  });

  it('defaults to three times the largest entry (at least 4 GiB), or RESFLOW_CACHE_BUDGET_GB', () => {
    delete process.env.RESFLOW_CACHE_BUDGET_GB;
    const e = (bytes: number) => ({ hash: 'h', dir: '/', bytes, lastUsed: 0 });
    expect(cacheBudgetBytes([e(5 * 2 ** 30), e(2 ** 30)])).toBe(15 * 2 ** 30);
    expect(cacheBudgetBytes([e(2 ** 20)])).toBe(4 * 2 ** 30);
    process.env.RESFLOW_CACHE_BUDGET_GB = '0.5';
    expect(cacheBudgetBytes([e(5 * 2 ** 30)])).toBe(2 ** 29);
  });

  it('never evicts the files of an open session, and evicts them once it is released', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'resflow-cache-'));
    const opts = { cacheDir: dir, inlineLimitBytes: 0 };
    process.env.RESFLOW_CACHE_BUDGET_GB = String(1 / 2 ** 30); // 1 byte: everything unpinned goes
    entry(dir, 'stale', 4096, 1000);
    const a = await compileGraph(linearGraph(1), opts);
    expect(existsSync(join(dir, 'onnx', a.hash, 'weights.bin'))).toBe(true);
    expect(isCacheEntryPinned(a.hash)).toBe(true);
    expect(existsSync(join(dir, 'onnx', 'stale'))).toBe(false);
    const b = await compileGraph(linearGraph(2), opts);
    // Both open: both kept although the budget is exceeded.
    expect(listCacheEntries(dir).map((e) => e.hash).sort()).toEqual([a.hash, b.hash].sort());
    const x = { data: new Float32Array(512).fill(0.5), dims: [1, 512] };
    const before = Array.from((await a.run({ x })).y!.data as Float32Array);
    await releaseSession(a.hash);
    expect(isCacheEntryPinned(a.hash)).toBe(false);
    const c = await compileGraph(linearGraph(3), opts);
    expect(listCacheEntries(dir).map((e) => e.hash).sort()).toEqual([b.hash, c.hash].sort());
    // A released graph compiled again is rebuilt from its sources, with the same results.
    const a2 = await compileGraph(linearGraph(1), opts);
    expect(Array.from((await a2.run({ x })).y!.data as Float32Array)).toEqual(before);
    for (const s of [b, c, a2]) await releaseSession(s.hash);
    expect(clearCache(dir).removed.length).toBe(3);
    expect(listCacheEntries(dir)).toEqual([]);
  });
});

describe('resflow cache', () => {
  it('lists entries with sizes and the budget, and --clear empties the cache', () => {
    const dir = mkdtempSync(join(tmpdir(), 'resflow-cache-cli-'));
    entry(dir, 'aaaa', 2 ** 20, 50);
    entry(dir, 'bbbb', 3 * 2 ** 20, 10);
    const bin = join(REPO, 'bin', 'resflow.js');
    const env = { ...process.env, RESFLOW_CACHE_DIR: dir, RESFLOW_CACHE_BUDGET_GB: '2' };
    const show = spawnSync(process.execPath, [bin, 'cache'], { encoding: 'utf8', env });
    expect(show.status, show.stderr).toBe(0);
    expect(show.stdout).toContain(dir);
    expect(show.stdout).toMatch(/bbbb\s+0\.00 GiB[\s\S]*aaaa/);
    expect(show.stdout).toContain('2 entries, 0.00 GiB of a 2.00 GiB budget');
    const json = JSON.parse(spawnSync(process.execPath, [bin, 'cache', '--json'], { encoding: 'utf8', env }).stdout);
    expect(json.bytes).toBe(4 * 2 ** 20);
    expect(json.entries.map((e: { hash: string }) => e.hash)).toEqual(['bbbb', 'aaaa']);
    const clear = spawnSync(process.execPath, [bin, 'cache', '--clear'], { encoding: 'utf8', env });
    expect(clear.status, clear.stderr).toBe(0);
    expect(clear.stdout).toMatch(/removed 2 entries/);
    expect(listCacheEntries(dir)).toEqual([]);
    expect(spawnSync(process.execPath, [bin, 'cache', 'extra'], { encoding: 'utf8', env }).status).toBe(2);
  }, 60_000);
});

describe('cache identity', () => {
  it('follows the model file content even when a same-size rewrite keeps the mtime', () => {
    const dir = mkdtempSync(join(tmpdir(), 'resflow-identity-'));
    const file = join(dir, 'm.safetensors');
    const write = (v: number) => writeSafetensors(file, { 'w': { dtype: 'F32', shape: [64, 64], data: new Float32Array(64 * 64).fill(v) } });
    const stamp = new Date('2026-03-04T05:06:07Z');
    write(1);
    utimesSync(file, stamp, stamp);
    const graphOf = () => {
      const ws = new WeightSet(SafetensorsFile.open(file), '');
      const g = new GraphBuilder();
      g.output('y', g.linear(g.input('x', 'float32', [1, 64]), ws.bind(g, 'w', [64, 64])));
      return graphHash(g.graph);
    };
    const first = graphOf();
    expect(graphOf()).toBe(first);
    const size = statSync(file).size;
    write(2);
    utimesSync(file, stamp, stamp);
    expect(statSync(file).size).toBe(size);
    expect(statSync(file).mtimeMs).toBe(stamp.getTime());
    expect(readFileSync(file).length).toBe(size);
    expect(graphOf()).not.toBe(first);
  });
});
