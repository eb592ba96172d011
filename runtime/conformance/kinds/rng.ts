import { TorchGenerator } from '../../sampling/torch-rng.js';
import type { CaseKind } from './types.js';

/**
 * `<group>/seed_<s>`: torch.manual_seed(s); torch.randn(shape). Groups whose expected tensor has one more
 * leading dim than a draw (e.g. `seq`: [2, 1, 4, 8, 8]) hold consecutive draws from one generator.
 */
export const rngKind: CaseKind = {
  name: 'rng',
  matches: (c) => c.name === 'rng',
  async run(c) {
    for (const name of c.expected.keys()) {
      const m = /^(.+)\/seed_(\d+)$/.exec(name);
      if (!m) continue;
      const shape = c.expected.info(name).shape;
      const repeated = m[1] === 'seq';
      const draws = repeated ? shape[0]! : 1;
      const per = shape.slice(repeated ? 1 : 0).reduce((a, b) => a * b, 1);
      const gen = new TorchGenerator(BigInt(m[2]!));
      const out = new Float32Array(draws * per);
      for (let d = 0; d < draws; d++) out.set(gen.randn(per), d * per);
      c.check(name, out, { atol: 0, rtol: 0 });
    }
  },
};
