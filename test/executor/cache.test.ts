import { describe, expect, it } from 'vitest';
import { computeCacheKeys, stableStringify } from '../../runtime/executor/cache-key.js';
import { estimateSize, LruCacheStore } from '../../runtime/executor/cache-store.js';
import { Executor } from '../../runtime/executor/executor.js';
import type { CacheEntry } from '../../runtime/executor/plan.js';
import { makeTestNodes, validGraph } from './fixtures.js';

describe('LruCacheStore', () => {
  it('evicts least recently used entries to stay within the byte budget', () => {
    const evicted: string[] = [];
    const store = new LruCacheStore<string>({ budgetBytes: 100, onEvict: (k) => evicted.push(k) });
    store.set('a', 'A', 40);
    store.set('b', 'B', 40);
    expect(store.get('a')).toBe('A'); // a is now more recent than b
    store.set('c', 'C', 40);
    expect(evicted).toEqual(['b']);
    expect(store.keys()).toEqual(['a', 'c']);
    expect(store.bytes).toBe(80);
    store.set('d', 'D', 90);
    expect(evicted).toEqual(['b', 'a', 'c']);
    expect(store.stats()).toMatchObject({ entries: 1, bytes: 90, budgetBytes: 100, evictions: 3, hits: 1 });
  });

  it('does not keep a value larger than the whole budget', () => {
    const store = new LruCacheStore<string>({ budgetBytes: 10 });
    store.set('a', 'A', 5);
    expect(store.set('huge', 'H', 11)).toBe(false);
    expect(store.keys()).toEqual(['a']);
  });

  it('replaces an entry under the same key without double counting', () => {
    const store = new LruCacheStore<string>({ budgetBytes: 10 });
    store.set('a', 'A', 6);
    store.set('a', 'A2', 7);
    expect(store.bytes).toBe(7);
    expect(store.peek('a')).toBe('A2');
  });
});

describe('estimateSize', () => {
  it('uses byteSize(), typed array lengths, and counts shared objects once', () => {
    expect(estimateSize({ byteSize: () => 5_000_000 })).toBe(5_000_000);
    expect(estimateSize(new Float32Array(256))).toBe(1024);
    const shared = new Uint8Array(1000);
    const twice = estimateSize([shared, shared]);
    expect(twice).toBeGreaterThanOrEqual(1000);
    expect(twice).toBeLessThan(2000);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(estimateSize(cyclic)).toBeGreaterThan(0);
  });
});

describe('cache keys', () => {
  it('are stable across ids and key order, and change with any upstream value', async () => {
    const { registry } = makeTestNodes();
    const g1 = await validGraph(registry, {
      '1': { class_type: 'Int', inputs: { value: 1 } },
      '2': { class_type: 'Concat', inputs: { a: 'x', b: 'y', separator: '-' } },
      '3': { class_type: 'Show', inputs: { value: ['1', 0] } },
      '4': { class_type: 'Sink', inputs: { value: ['2', 0] } },
    });
    const g2 = await validGraph(registry, {
      '8': { class_type: 'Concat', inputs: { separator: '-', b: 'y', a: 'x' } },
      '9': { class_type: 'Int', inputs: { value: 2 } },
      '10': { class_type: 'Show', inputs: { value: ['9', 0] } },
      '11': { class_type: 'Sink', inputs: { value: ['8', 0] } },
    });
    const k1 = computeCacheKeys(g1, ['3', '4']);
    const k2 = computeCacheKeys(g2, ['10', '11']);
    expect(k1.get('2')).toBe(k2.get('8'));
    expect(k1.get('4')).toBe(k2.get('11'));
    expect(k1.get('1')).not.toBe(k2.get('9'));
    expect(k1.get('3')).not.toBe(k2.get('10'));
    expect(computeCacheKeys(g1, ['3']).get('3')).toBe(k1.get('3'));
    // Show declares UNIQUE_ID, so its id is part of the key even with identical inputs.
    const twins = await validGraph(registry, {
      '1': { class_type: 'Int', inputs: { value: 1 } },
      '2': { class_type: 'Show', inputs: { value: ['1', 0] } },
      '3': { class_type: 'Show', inputs: { value: ['1', 0] } },
    });
    const tk = computeCacheKeys(twins, ['2', '3']);
    expect(tk.get('2')).not.toBe(tk.get('3'));
    expect(tk.get('1')).toBe(k1.get('1'));
    expect(stableStringify({ b: 1, a: [1, { d: 2, c: undefined }] })).toBe('{"a":[1,{"d":2}],"b":1}');
  });
});

describe('executor cache budget', () => {
  it('evicts under a small budget and re-executes what was evicted, only that', async () => {
    const { registry, calls } = makeTestNodes();
    const store = new LruCacheStore<CacheEntry>({ budgetBytes: 2500 });
    const blobBytes = (outputs: unknown) => ((outputs as unknown[])[0] instanceof Uint8Array ? (outputs as Uint8Array[])[0].byteLength : 1);
    const executor = new Executor({ store, sizeOf: blobBytes });
    // Show keys include its id, so a new Show id forces the output node to run and read its blob.
    const prompt = (tag: string, show: string) => ({
      '1': { class_type: 'Big', inputs: { bytes: 1000, tag } },
      [show]: { class_type: 'Show', inputs: { value: ['1', 0] } },
    });
    const run = async (tag: string, show: string) => executor.run(await validGraph(registry, prompt(tag, show)));

    await run('a', '2');
    await run('b', '2');
    expect(calls.get('Big')).toBe(2);
    expect(store.bytes).toBeLessThanOrEqual(2500);

    expect((await run('a', '3')).executed).toEqual(['3']); // blob a still cached, and now most recent
    await run('c', '2'); // needs room: evicts the least recent blob, b
    expect(calls.get('Big')).toBe(3);
    expect(executor.cacheStats().evictions).toBeGreaterThan(0);
    expect(store.bytes).toBeLessThanOrEqual(2500);

    expect((await run('a', '4')).executed).toEqual(['4']);
    expect((await run('b', '5')).executed).toEqual(['1', '5']);
    expect(calls.get('Big')).toBe(4);
  });

  it('finishes a run whose cached inputs get evicted mid-run', async () => {
    const { registry, calls, sink } = makeTestNodes();
    // Room for one blob: storing a new blob evicts the other while this run still needs it.
    const executor = new Executor({ cacheBudgetBytes: 1500 });
    const blobs = {
      '1': { class_type: 'Big', inputs: { bytes: 1000, tag: 'x' } },
      '2': { class_type: 'Big', inputs: { bytes: 1000, tag: 'y' } },
    };
    await executor.run(await validGraph(registry, { ...blobs, '3': { class_type: 'Sink', inputs: { value: ['1', 0] } }, '4': { class_type: 'Sink', inputs: { value: ['2', 0] } } }));
    expect(calls.get('Big')).toBe(2);

    // Blob y is a hit at planning time; re-running blob x then evicts y before node 7 reads it.
    registry.register({ name: 'Pass', category: 't', inputs: { required: { v: { type: 'BLOB' } } }, outputs: [{ type: 'BLOB' }], execute: ({ v }) => [v] });
    const result = await executor.run(
      await validGraph(registry, {
        ...blobs,
        '5': { class_type: 'Show', inputs: { value: ['1', 0] } },
        '6': { class_type: 'Show', inputs: { value: ['7', 0] } },
        '7': { class_type: 'Pass', inputs: { v: ['2', 0] } },
      }),
    );
    expect(result.status).toBe('success');
    expect(result.cached).toEqual(['2']);
    expect(result.executed).toEqual(['1', '5', '7', '6']);
    expect(executor.cacheStats().evictions).toBeGreaterThan(0);
    expect(sink.slice(-2).map((s) => (s.value as Uint8Array).byteLength)).toEqual([1000, 1000]);
  });
});
