/**
 * CFG++ samplers (Chung et al. 2024) as ComfyUI's k-diffusion defines them for eps / v models: the
 * step re-noises along the unguided prediction while landing on the guided one. They read the
 * negative prediction through ComfyUI's post-CFG hook (our `denoiserWithUncond`).
 */
import { ancestralStep, evalWithUncond, report, type SamplerContext, type SamplerOptions } from './common.js';

const lambdaOf = (sigma: number): number => -Math.log(sigma);

export async function sampleEulerAncestralCfgPp(ctx: SamplerContext, options: SamplerOptions = {}): Promise<Float32Array> {
  const { sigmas } = ctx;
  const eta = options.eta ?? 1;
  const sNoise = options.sNoise ?? 1;
  let x = ctx.x;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const sigmaNext = sigmas[i + 1]!;
    const { denoised, uncond } = await evalWithUncond(ctx, x, sigma, i);
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    if (sigmaNext === 0) {
      x = denoised;
      continue;
    }
    // alpha = sigma * exp(lambda) is 1 for eps / v models; kept for the shape of the formula.
    const alphaS = sigma * Math.exp(lambdaOf(sigma));
    const alphaT = sigmaNext * Math.exp(lambdaOf(sigmaNext));
    const a = ancestralStep(sigma / alphaS, sigmaNext / alphaT, eta);
    const sigmaDown = alphaT * a.sigmaDown;
    const next = new Float32Array(x.length);
    for (let k = 0; k < x.length; k++) {
      const d = (x[k]! - alphaS * uncond[k]!) / sigma;
      next[k] = alphaT * denoised[k]! + sigmaDown * d;
    }
    if (eta > 0 && sNoise > 0) {
      const noise = ctx.noiseSampler(sigma, sigmaNext);
      const c = alphaT * sNoise * a.sigmaUp;
      for (let k = 0; k < x.length; k++) next[k] = next[k]! + c * noise[k]!;
    }
    x = next;
  }
  return x;
}

export function sampleEulerCfgPp(ctx: SamplerContext): Promise<Float32Array> {
  return sampleEulerAncestralCfgPp(ctx, { eta: 0, sNoise: 0 });
}

export async function sampleDpmpp2sAncestralCfgPp(ctx: SamplerContext, options: SamplerOptions = {}): Promise<Float32Array> {
  const { sigmas } = ctx;
  const eta = options.eta ?? 1;
  const sNoise = options.sNoise ?? 1;
  let x = ctx.x;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const sigmaNext = sigmas[i + 1]!;
    const { denoised, uncond } = await evalWithUncond(ctx, x, sigma, i);
    const { sigmaDown, sigmaUp } = ancestralStep(sigma, sigmaNext, eta);
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    const n = x.length;
    const next = new Float32Array(n);
    if (sigmaDown === 0) {
      for (let k = 0; k < n; k++) next[k] = denoised[k]! + ((x[k]! - uncond[k]!) / sigma) * sigmaDown;
    } else {
      // DPM-Solver++(2S) on x shifted by the guidance (denoised - uncond), landing on the guided predictions.
      const t = lambdaOf(sigma);
      const tNext = lambdaOf(sigmaDown);
      const h = tNext - t;
      const s = t + 0.5 * h;
      const shifted = new Float32Array(n);
      for (let k = 0; k < n; k++) shifted[k] = x[k]! + (denoised[k]! - uncond[k]!);
      const x2 = new Float32Array(n);
      const r1 = Math.exp(-s) / Math.exp(-t);
      const c1 = Math.expm1(-h * 0.5);
      for (let k = 0; k < n; k++) x2[k] = r1 * shifted[k]! - c1 * denoised[k]!;
      const { denoised: denoised2, uncond: uncond2 } = await evalWithUncond(ctx, x2, Math.exp(-s), i);
      const r2 = Math.exp(-tNext) / Math.exp(-t);
      const c2 = Math.expm1(-h);
      // ComfyUI's post-CFG hook has already replaced the stored uncond by the midpoint's here.
      for (let k = 0; k < n; k++) next[k] = r2 * (x[k]! + (denoised[k]! - uncond2[k]!)) - c2 * denoised2[k]!;
    }
    if (sigmaNext > 0) {
      const noise = ctx.noiseSampler(sigma, sigmaNext);
      for (let k = 0; k < n; k++) next[k] = next[k]! + noise[k]! * sNoise * sigmaUp;
    }
    x = next;
  }
  return x;
}

export async function sampleDpmpp2mCfgPp(ctx: SamplerContext): Promise<Float32Array> {
  const { sigmas } = ctx;
  let x = ctx.x;
  let oldUncond: Float32Array | null = null;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const sigmaNext = sigmas[i + 1]!;
    const { denoised, uncond } = await evalWithUncond(ctx, x, sigma, i);
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    const t = lambdaOf(sigma);
    const h = lambdaOf(sigmaNext) - t;
    const e = Math.exp(-h);
    const next = new Float32Array(x.length);
    if (oldUncond === null || sigmaNext === 0) {
      for (let k = 0; k < x.length; k++) next[k] = denoised[k]! - e * uncond[k]! + e * x[k]!;
    } else {
      const r = (t - lambdaOf(sigmas[i - 1]!)) / h;
      const c = Math.expm1(-h) * (1 / (2 * r));
      for (let k = 0; k < x.length; k++) next[k] = denoised[k]! + (-e * uncond[k]! - c * (denoised[k]! - oldUncond[k]!)) + e * x[k]!;
    }
    oldUncond = uncond;
    x = next;
  }
  return x;
}
