import { afterEach, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../runtime/graph/builder.js';
import { compileGraph, sessionStats } from '../../runtime/graph/session.js';

function linearGraph(seed: number) {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', ['B', 256]);
  const w = g.weight(`w${seed}`, [256, 256], { key: `budget-test#${seed}`, load: () => Float32Array.from({ length: 256 * 256 }, (_, i) => ((i * (seed + 3)) % 17) / 17 - 0.5) });
  // A small overridable bias: its F32 default is what an unloaded session must not keep.
  const b = g.weight(`b${seed}`, [256], { key: `budget-test-bias#${seed}`, load: () => new Float32Array(256).fill(seed / 10) }, { overridable: true });
  g.output('y', g.linear(x, w, b));
  return g.graph;
}

describe('session memory budget', () => {
  const saved = process.env.RESFLOW_SESSION_BUDGET_MB;
  afterEach(() => {
    if (saved === undefined) delete process.env.RESFLOW_SESSION_BUDGET_MB;
    else process.env.RESFLOW_SESSION_BUDGET_MB = saved;
  });

  it('unloads least recently used idle sessions past the budget and reopens them transparently', async () => {
    // Each model holds 256 KiB of weights; a 0.6 MiB budget keeps two open.
    process.env.RESFLOW_SESSION_BUDGET_MB = '0.6';
    const x = { data: Float32Array.from({ length: 2 * 256 }, (_, i) => Math.sin(i)), dims: [2, 256] };
    const sessions = [];
    const first: Float32Array[] = [];
    for (let i = 0; i < 4; i++) {
      const s = await compileGraph(linearGraph(i));
      sessions.push(s);
      first.push((await s.run({ x })).y!.data as Float32Array);
    }
    expect(sessions[0]!.loaded).toBe(false);
    expect(sessions[3]!.loaded).toBe(true);
    // Unloading frees the F32 defaults of overridable weights too, and running again restores them.
    expect(sessions[0]!.defaultBytes).toBe(0);
    expect(sessions[3]!.defaultBytes).toBe(256 * 4);
    expect(sessionStats().weightBytes).toBeLessThanOrEqual(0.6 * 2 ** 20);
    // The unloaded one still answers, identically, and the budget still holds afterwards.
    const again = (await sessions[0]!.run({ x })).y!.data as Float32Array;
    expect(Array.from(again)).toEqual(Array.from(first[0]!));
    expect(sessions[0]!.loaded).toBe(true);
    expect(sessionStats().weightBytes).toBeLessThanOrEqual(0.6 * 2 ** 20);
    expect(await compileGraph(linearGraph(0))).toBe(sessions[0]);
  });
});
