import { compileGraph, type TensorData } from '../../graph/session.js';
import { buildUnetGraph } from '../../models/unet/unet.js';
import { ModelSampling } from '../../sampling/model-sampling.js';
import type { CaseKind } from './types.js';

/** x / sqrt(sigma_b^2 + 1) per batch item. */
export function cInScale(x: TensorData, sigmas: ArrayLike<number>): Float32Array {
  const per = x.data.length / sigmas.length;
  const out = new Float32Array(x.data.length);
  for (let i = 0; i < out.length; i++) out[i] = Number(x.data[i]) / Math.sqrt(sigmas[Math.floor(i / per)]! ** 2 + 1);
  return out;
}

/** x - eps * sigma_b per batch item. */
export function epsToDenoised(x: TensorData, eps: ArrayLike<number>, sigmas: ArrayLike<number>): Float32Array {
  const per = x.data.length / sigmas.length;
  const out = new Float32Array(x.data.length);
  for (let i = 0; i < out.length; i++) out[i] = Number(x.data[i]) - eps[i]! * sigmas[Math.floor(i / per)]!;
  return out;
}

export const unetKind: CaseKind = {
  name: 'unet',
  matches: (c) => /^unet(-odd\d*)?$/.test(c.name),
  async run(c, models) {
    const unet = models.unet(c);
    const x = c.input('x');
    const context = c.input('context');
    const wantIntermediates = c.expected.keys().some((k) => k.startsWith('intermediate/'));
    const graph = buildUnetGraph(unet.weights, unet.config, { intermediates: wantIntermediates });
    const session = await compileGraph(graph);
    const out = await session.run({ x, timesteps: c.input('timesteps'), context });
    for (const [name, t] of Object.entries(out)) if (c.hasExpected(name)) c.check(name, t.data as Float32Array);
    if (c.hasInput('sigma')) {
      const sigma = c.input('sigma').data as Float32Array;
      const ms = new ModelSampling();
      const ts = Float32Array.from(sigma, (s) => ms.sigmaToTimestep(s));
      c.check('wrapper/timestep', ts);
      const cin = cInScale(x, sigma);
      c.check('wrapper/c_in_x', cin);
      const eps = await unet.eps({ data: cin, dims: x.dims }, ts, context);
      c.check('wrapper/eps', eps.data as Float32Array);
      c.check('wrapper/denoised', epsToDenoised(x, eps.data as Float32Array, sigma));
    }
  },
};
