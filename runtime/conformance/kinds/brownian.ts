import { BrownianTree, SeedSequence, brownianTreeNoiseSampler } from '../../sampling/brownian.js';
import { compareTensor, type ConformanceCase } from '../case.js';
import { stack } from './sampling.js';
import type { CaseKind } from './types.js';

function checkExact(c: ConformanceCase, name: string, actual: ArrayLike<number>): void {
  c.results.push(compareTensor(name, actual, c.expected.readNumbers(name), { atol: 0, rtol: 0 }));
}

interface TreeParams {
  name: string;
  entropy_str: string;
  shape: number[];
}

/** `brownian`: the torchsde BrownianTree increments, ComfyUI's noise, and numpy SeedSequence words. */
export const brownianKind: CaseKind = {
  name: 'brownian',
  matches: (c) => c.name === 'brownian',
  async run(c) {
    for (const t of c.json.params.trees as TreeParams[]) {
      const entropy = BigInt(t.entropy_str);
      const [t0, t1] = c.input(`${t.name}/t0_t1`).data as Float32Array;
      const q = c.input(`${t.name}/queries`).data as Float32Array;
      const numel = t.shape.reduce((a, b) => a * b, 1);
      const tree = new BrownianTree(t0!, t1!, numel, entropy);
      const noise = brownianTreeNoiseSampler([t0!, t1!], numel, entropy);
      const ws: Float32Array[] = [];
      const ns: Float32Array[] = [];
      for (let j = 0; j < q.length / 2; j++) {
        const a = q[2 * j]!;
        const b = q[2 * j + 1]!;
        ws.push(tree.increment(Math.min(a, b), Math.max(a, b)));
        ns.push(noise(a, b));
      }
      c.check(`${t.name}/W`, stack(ws));
      c.check(`${t.name}/comfy_noise`, stack(ns));
      checkExact(c, `${t.name}/root_state`, new SeedSequence(entropy, [], 24).generateState(3));
      checkExact(c, `${t.name}/root_split_state`, new SeedSequence(entropy, [0n, 0n], 24).generateState(4));
    }
    for (const s of c.json.params.seedseq as Array<{ name: string; entropy_str: string; spawn_key: number[]; pool_size: number; n_words: number }>) {
      const seq = new SeedSequence(BigInt(s.entropy_str), s.spawn_key.map((k) => BigInt(k)), s.pool_size);
      checkExact(c, s.name, seq.generateState(s.n_words));
    }
  },
};
