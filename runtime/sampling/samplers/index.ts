/** Sampler registry by ComfyUI name. */
import { SamplingValidationError } from '../types.js';
import type { SamplerFn } from './common.js';
import { sampleDpmpp2m, sampleDpmpp2mSde, sampleDpmpp2sAncestral, sampleDpmppSde } from './dpmpp.js';
import { sampleEuler, sampleEulerAncestral } from './euler.js';
import { sampleDpm2, sampleDpm2Ancestral, sampleHeun } from './heun.js';
import { sampleLcm } from './lcm.js';
import { sampleUniPc } from './uni-pc.js';

export type { SamplerContext, SamplerFn, SamplerOptions, SamplerStep } from './common.js';
export { ancestralStep, toD } from './common.js';
export { sampleDpmpp2m, sampleDpmpp2mSde, sampleDpmpp2sAncestral, sampleDpmppSde } from './dpmpp.js';
export { sampleEuler, sampleEulerAncestral } from './euler.js';
export { sampleDpm2, sampleDpm2Ancestral, sampleHeun } from './heun.js';
export { sampleLcm } from './lcm.js';
export { sampleUniPc, type UniPcVariant } from './uni-pc.js';

export const SAMPLERS: Readonly<Record<string, SamplerFn>> = {
  euler: sampleEuler,
  euler_ancestral: sampleEulerAncestral,
  heun: sampleHeun,
  dpm_2: sampleDpm2,
  dpm_2_ancestral: sampleDpm2Ancestral,
  dpmpp_2s_ancestral: sampleDpmpp2sAncestral,
  dpmpp_sde: sampleDpmppSde,
  dpmpp_2m: sampleDpmpp2m,
  dpmpp_2m_sde: sampleDpmpp2mSde,
  // ComfyUI's "ddim" is the euler sampler (its DDIM-specific part only concerns inpaint noise).
  ddim: sampleEuler,
  lcm: sampleLcm,
  uni_pc: (ctx) => sampleUniPc(ctx, 'bh1'),
  uni_pc_bh2: (ctx) => sampleUniPc(ctx, 'bh2'),
};

export const SAMPLER_NAMES: readonly string[] = Object.keys(SAMPLERS);

/** Samplers that draw from the noise sampler (the others are deterministic given x0). */
export const STOCHASTIC_SAMPLERS: ReadonlySet<string> = new Set([
  'euler_ancestral',
  'dpm_2_ancestral',
  'dpmpp_2s_ancestral',
  'dpmpp_sde',
  'dpmpp_2m_sde',
  'lcm',
]);

export function getSampler(name: string): SamplerFn {
  const fn = Object.hasOwn(SAMPLERS, name) ? SAMPLERS[name] : undefined;
  if (!fn) throw new SamplingValidationError(`unknown sampler "${name}"; valid samplers: ${SAMPLER_NAMES.join(', ')}`);
  return fn;
}
