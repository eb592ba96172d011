/** Sampler registry by ComfyUI name. */
import { SamplingValidationError } from '../types.js';
import type { SamplerFn } from './common.js';
import { sampleDpmpp2m, sampleDpmpp2mSde, sampleDpmpp2sAncestral, sampleDpmppSde } from './dpmpp.js';
import { sampleEuler, sampleEulerAncestral } from './euler.js';
import { sampleDpm2, sampleDpm2Ancestral, sampleHeun } from './heun.js';
import { sampleLcm } from './lcm.js';
import { sampleUniPc } from './uni-pc.js';
import { sampleDpmpp2mCfgPp, sampleDpmpp2sAncestralCfgPp, sampleEulerAncestralCfgPp, sampleEulerCfgPp } from './cfg-pp.js';
import { sampleDpmAdaptive, sampleDpmFast } from './dpm-solver.js';
import { sampleDeis, sampleHeunpp2, sampleIpndm, sampleIpndmV, sampleLms } from './linear-multistep.js';
import { resMultistep, sampleGradientEstimation } from './res-multistep.js';
import { sampleSaSolver } from './sa-solver.js';
import { sampleDdpm, sampleDpmpp3mSde, sampleErSde, sampleSeeds2, sampleSeeds3 } from './stochastic.js';

export type { SamplerContext, SamplerFn, SamplerOptions, SamplerStep, UncondDenoiser } from './common.js';
export { ancestralStep, toD } from './common.js';
export { sampleDpmpp2m, sampleDpmpp2mSde, sampleDpmpp2sAncestral, sampleDpmppSde } from './dpmpp.js';
export { sampleEuler, sampleEulerAncestral } from './euler.js';
export { sampleDpm2, sampleDpm2Ancestral, sampleHeun } from './heun.js';
export { sampleLcm } from './lcm.js';
export { sampleUniPc, type UniPcVariant } from './uni-pc.js';

const dpmpp2mSdeHeun: SamplerFn = (ctx, o) => sampleDpmpp2mSde(ctx, { ...o, solverType: 'heun' });

/** Every KSampler sampler name of ComfyUI, in ComfyUI's order (`*_gpu`: the same math on our device). */
export const SAMPLERS: Readonly<Record<string, SamplerFn>> = {
  euler: sampleEuler,
  euler_cfg_pp: sampleEulerCfgPp,
  euler_ancestral: sampleEulerAncestral,
  euler_ancestral_cfg_pp: sampleEulerAncestralCfgPp,
  heun: sampleHeun,
  heunpp2: sampleHeunpp2,
  dpm_2: sampleDpm2,
  dpm_2_ancestral: sampleDpm2Ancestral,
  lms: (ctx) => sampleLms(ctx),
  dpm_fast: sampleDpmFast,
  dpm_adaptive: (ctx) => sampleDpmAdaptive(ctx),
  dpmpp_2s_ancestral: sampleDpmpp2sAncestral,
  dpmpp_2s_ancestral_cfg_pp: sampleDpmpp2sAncestralCfgPp,
  dpmpp_sde: sampleDpmppSde,
  dpmpp_sde_gpu: sampleDpmppSde,
  dpmpp_2m: sampleDpmpp2m,
  dpmpp_2m_cfg_pp: sampleDpmpp2mCfgPp,
  dpmpp_2m_sde: sampleDpmpp2mSde,
  dpmpp_2m_sde_gpu: sampleDpmpp2mSde,
  dpmpp_2m_sde_heun: dpmpp2mSdeHeun,
  dpmpp_2m_sde_heun_gpu: dpmpp2mSdeHeun,
  dpmpp_3m_sde: sampleDpmpp3mSde,
  dpmpp_3m_sde_gpu: sampleDpmpp3mSde,
  ddpm: sampleDdpm,
  lcm: sampleLcm,
  ipndm: (ctx) => sampleIpndm(ctx),
  ipndm_v: (ctx) => sampleIpndmV(ctx),
  deis: (ctx) => sampleDeis(ctx),
  res_multistep: (ctx, o) => resMultistep(ctx, { ...o, eta: 0 }),
  res_multistep_cfg_pp: (ctx, o) => resMultistep(ctx, { ...o, eta: 0, cfgPp: true }),
  res_multistep_ancestral: (ctx, o) => resMultistep(ctx, o),
  res_multistep_ancestral_cfg_pp: (ctx, o) => resMultistep(ctx, { ...o, cfgPp: true }),
  gradient_estimation: (ctx) => sampleGradientEstimation(ctx, false),
  gradient_estimation_cfg_pp: (ctx) => sampleGradientEstimation(ctx, true),
  er_sde: (ctx, o) => sampleErSde(ctx, o),
  seeds_2: (ctx, o) => sampleSeeds2(ctx, o),
  seeds_3: (ctx, o) => sampleSeeds3(ctx, o),
  sa_solver: (ctx, o) => sampleSaSolver(ctx, o),
  sa_solver_pece: (ctx, o) => sampleSaSolver(ctx, { ...o, usePece: true }),
  // ComfyUI's "ddim" is the euler sampler (its DDIM-specific part only concerns inpaint noise).
  ddim: sampleEuler,
  uni_pc: (ctx) => sampleUniPc(ctx, 'bh1'),
  uni_pc_bh2: (ctx) => sampleUniPc(ctx, 'bh2'),
};

export const SAMPLER_NAMES: readonly string[] = Object.keys(SAMPLERS);

/** Samplers whose default noise is ComfyUI's BrownianTreeNoiseSampler (torchsde) seeded from the KSampler seed. */
export const BROWNIAN_SAMPLERS: ReadonlySet<string> = new Set([
  'dpmpp_sde',
  'dpmpp_sde_gpu',
  'dpmpp_2m_sde',
  'dpmpp_2m_sde_gpu',
  'dpmpp_2m_sde_heun',
  'dpmpp_2m_sde_heun_gpu',
  'dpmpp_3m_sde',
  'dpmpp_3m_sde_gpu',
]);

/** Samplers that draw from the noise sampler (the others are deterministic given x0). */
export const STOCHASTIC_SAMPLERS: ReadonlySet<string> = new Set([
  ...BROWNIAN_SAMPLERS,
  'euler_ancestral',
  'euler_ancestral_cfg_pp',
  'dpm_2_ancestral',
  'dpmpp_2s_ancestral',
  'dpmpp_2s_ancestral_cfg_pp',
  'ddpm',
  'lcm',
  'res_multistep_ancestral',
  'res_multistep_ancestral_cfg_pp',
  'er_sde',
  'seeds_2',
  'seeds_3',
  'sa_solver',
  'sa_solver_pece',
]);

export function getSampler(name: string): SamplerFn {
  const fn = Object.hasOwn(SAMPLERS, name) ? SAMPLERS[name] : undefined;
  if (!fn) throw new SamplingValidationError(`unknown sampler "${name}"; valid samplers: ${SAMPLER_NAMES.join(', ')}`);
  return fn;
}
