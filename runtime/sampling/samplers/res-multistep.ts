/**
 * ComfyUI's res_multistep family (second-order multistep exponential integrator, Zhang et al. 2023,
 * with optional ancestral noise and CFG++) and the gradient-estimation sampler (Permenter & Yuan).
 */
import { ancestralStep, evalWithUncond, report, type SamplerContext, type SamplerOptions } from './common.js';

const tOf = (sigma: number): number => -Math.log(sigma);

export interface ResMultistepOptions extends SamplerOptions {
  cfgPp?: boolean;
}

export async function resMultistep(ctx: SamplerContext, options: ResMultistepOptions = {}): Promise<Float32Array> {
  const { sigmas } = ctx;
  const eta = options.eta ?? 1;
  const sNoise = options.sNoise ?? 1;
  const cfgPp = options.cfgPp ?? false;
  let x = ctx.x;
  let oldSigmaDown: number | null = null;
  let oldDenoised: Float32Array | null = null;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const sigmaNext = sigmas[i + 1]!;
    const { denoised, uncond } = await evalWithUncond(ctx, x, sigma, i);
    const { sigmaDown, sigmaUp } = ancestralStep(sigma, sigmaNext, eta);
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    const n = x.length;
    const next = new Float32Array(n);
    if (sigmaDown === 0 || oldDenoised === null || oldSigmaDown === null) {
      if (cfgPp) {
        for (let k = 0; k < n; k++) next[k] = denoised[k]! + ((x[k]! - uncond[k]!) / sigma) * sigmaDown;
      } else {
        for (let k = 0; k < n; k++) next[k] = x[k]! + ((x[k]! - denoised[k]!) / sigma) * (sigmaDown - sigma);
      }
    } else {
      const t = tOf(sigma);
      const h = tOf(sigmaDown) - t;
      const c2 = (tOf(sigmas[i - 1]!) - tOf(oldSigmaDown)) / h;
      const phi1 = Math.expm1(-h) / -h;
      const phi2 = (phi1 - 1) / -h;
      const nan0 = (v: number) => (Number.isNaN(v) ? 0 : v);
      const b1 = nan0(phi1 - phi2 / c2);
      const b2 = nan0(phi2 / c2);
      const decay = Math.exp(-h);
      const cur = cfgPp ? uncond : denoised;
      for (let k = 0; k < n; k++) {
        const xk = cfgPp ? x[k]! + (denoised[k]! - uncond[k]!) : x[k]!;
        next[k] = decay * xk + h * (b1 * cur[k]! + b2 * oldDenoised[k]!);
      }
    }
    if (sigmaNext > 0 && sigmaUp !== 0) {
      const noise = ctx.noiseSampler(sigma, sigmaNext);
      for (let k = 0; k < n; k++) next[k] = next[k]! + noise[k]! * sNoise * sigmaUp;
    }
    oldDenoised = cfgPp ? uncond : denoised;
    oldSigmaDown = sigmaDown;
    x = next;
  }
  return x;
}

export async function sampleGradientEstimation(ctx: SamplerContext, cfgPp = false, geGamma = 2): Promise<Float32Array> {
  const { sigmas } = ctx;
  let x = ctx.x;
  let oldD: Float32Array | null = null;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const sigmaNext = sigmas[i + 1]!;
    const { denoised, uncond } = await evalWithUncond(ctx, x, sigma, i);
    const base = cfgPp ? uncond : denoised;
    const n = x.length;
    const d = new Float32Array(n);
    for (let k = 0; k < n; k++) d[k] = (x[k]! - base[k]!) / sigma;
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    const dt = sigmaNext - sigma;
    if (sigmaNext === 0) {
      x = denoised;
    } else {
      const next = new Float32Array(n);
      for (let k = 0; k < n; k++) next[k] = cfgPp ? denoised[k]! + d[k]! * sigmaNext : x[k]! + d[k]! * dt;
      if (i >= 1 && oldD) {
        for (let k = 0; k < n; k++) next[k] = next[k]! + (geGamma - 1) * (d[k]! - oldD[k]!) * dt;
      }
      x = next;
    }
    oldD = d;
  }
  return x;
}
