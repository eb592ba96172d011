import { describe, expect, it } from 'vitest';
import { BrownianTree, SeedSequence, brownianTreeNoiseSampler, round6, uint32Words } from '../../runtime/sampling/brownian.js';

describe('Brownian tree helpers', () => {
  it('round6 is Python round(t, 6): exact binary ties go to the even digit', () => {
    // 1/128 = 0.0078125 exactly: a tie between 0.007812 and 0.007813.
    expect(round6(0.0078125)).toBe(0.007812);
    expect(round6(-0.0078125)).toBe(-0.007812);
    // 3/128 = 0.0234375: tie between ...437 and ...438, the even one is ...438.
    expect(round6(0.0234375)).toBe(0.023438);
    expect(round6(14.614643096923828)).toBe(14.614643);
    expect(round6(0.0291671771556139)).toBe(0.029167);
  });

  it('uint32Words splits integers little-endian, 0 -> [0]', () => {
    expect(uint32Words(0n)).toEqual([0]);
    expect(uint32Words(42n)).toEqual([42]);
    expect(uint32Words(2n ** 32n + 42n)).toEqual([42, 1]);
  });

  it('SeedSequence words differ with the spawn key and are deterministic', () => {
    const a = new SeedSequence(42n, [], 24).generateState(4);
    expect(Array.from(new SeedSequence(42n, [], 24).generateState(4))).toEqual(Array.from(a));
    expect(Array.from(new SeedSequence(42n, [0n, 0n], 24).generateState(4))).not.toEqual(Array.from(a));
    expect(a.every((w) => Number.isInteger(w) && w >= 0 && w < 2 ** 32)).toBe(true);
  });
});

describe('BrownianTree', () => {
  const numel = 4096;
  const t0 = 0.0291671771556139;
  const t1 = 14.614643096923828;

  it('increments do not depend on query order, and adjacent increments add up', () => {
    const a = new BrownianTree(t0, t1, numel, 42);
    const b = new BrownianTree(t0, t1, numel, 42);
    const q: Array<[number, number]> = [
      [0.5, 3.25],
      [3.25, 9],
      [0.5, 9],
      [0.1, 14],
    ];
    const fwd = q.map(([x, y]) => a.increment(x, y));
    const rev = [...q].reverse().map(([x, y]) => b.increment(x, y)).reverse();
    fwd.forEach((w, i) => expect(Array.from(w)).toEqual(Array.from(rev[i]!)));
    // [0.5, 9] is covered by the same nodes as [0.5, 3.25] + [3.25, 9] when 3.25 is a node boundary of both.
    const sum = fwd[0]!.map((v, i) => v + fwd[1]![i]!);
    let err = 0;
    for (let i = 0; i < numel; i++) err = Math.max(err, Math.abs(sum[i]! - fwd[2]![i]!));
    expect(err).toBeLessThan(1e-4);
  });

  it('an increment has variance tb - ta; different seeds give different paths', () => {
    const tree = new BrownianTree(t0, t1, numel, 7);
    for (const [x, y] of [
      [1, 2],
      [0.05, 0.06],
      [t0, t1],
    ] as Array<[number, number]>) {
      const w = tree.increment(x, y);
      const variance = w.reduce((s, v) => s + v * v, 0) / numel;
      expect(variance / (y - x)).toBeGreaterThan(0.9);
      expect(variance / (y - x)).toBeLessThan(1.1);
    }
    const other = new BrownianTree(t0, t1, numel, 8).increment(1, 2);
    expect(Array.from(other)).not.toEqual(Array.from(tree.increment(1, 2)));
  });

  it("ComfyUI's noise sampler is -W / sqrt(sigma - sigma_next), unit variance", () => {
    const ns = brownianTreeNoiseSampler([14.6, 3, 0.5, 0], numel, 42);
    const n = ns(3, 0.5);
    const variance = n.reduce((s, v) => s + v * v, 0) / numel;
    expect(variance).toBeGreaterThan(0.9);
    expect(variance).toBeLessThan(1.1);
    const w = new BrownianTree(0.5, 14.6, numel, 42).increment(0.5, 3);
    const scale = Math.fround(Math.sqrt(2.5));
    for (let i = 0; i < 8; i++) expect(n[i]).toBeCloseTo(-w[i]! / scale, 5);
  });
});
