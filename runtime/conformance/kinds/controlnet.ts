import type { TensorData } from '../../graph/session.js';
import { ModelSampling } from '../../sampling/model-sampling.js';
import { cInScale, epsToDenoised } from './unet.js';
import type { CaseKind } from './types.js';

function scaled(t: TensorData, s: number): TensorData {
  return { data: Float32Array.from(t.data as Float32Array, (v) => v * s), dims: t.dims };
}

export const controlnetKind: CaseKind = {
  name: 'unet-controlnet',
  matches: (c) => c.name.startsWith('unet-controlnet'),
  async run(c, models) {
    const unet = models.unet(c);
    const cn = await models.controlnet(c);
    const strength = Number(c.json.params?.strength ?? 1);
    const x = c.input('x');
    const sigma = c.input('sigma').data as Float32Array;
    const context = c.input('context');
    const ms = new ModelSampling();
    const ts = Float32Array.from(sigma, (s) => ms.sigmaToTimestep(s));
    c.check('timestep', ts);
    const xin: TensorData = { data: cInScale(x, sigma), dims: x.dims };
    const res = await cn.residuals(xin, { data: ts, dims: [ts.length] }, context, c.input('hint'));
    res.outputs.forEach((o, i) => c.check(`control_raw/output.${i}`, o.data as Float32Array));
    c.check('control_raw/middle.0', res.middle.data as Float32Array);
    const control = { outputs: res.outputs.map((o) => scaled(o, strength)), middle: scaled(res.middle, strength) };
    control.outputs.forEach((o, i) => c.check(`control/output.${i}`, o.data as Float32Array));
    c.check('control/middle.0', control.middle.data as Float32Array);
    const eps = await unet.eps(xin, ts, context, { control });
    c.check('eps', eps.data as Float32Array);
    c.check('eps_without_control', (await unet.eps(xin, ts, context)).data as Float32Array);
    c.check('denoised', epsToDenoised(x, eps.data as Float32Array, sigma));
  },
};
