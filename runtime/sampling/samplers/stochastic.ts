/**
 * Stochastic samplers of ComfyUI's k-diffusion for eps / v models (alpha = 1, lambda = -log sigma):
 * ddpm, er_sde (ER-SDE-Solver-3), seeds_2 / seeds_3 (SEEDS, data prediction) and dpmpp_3m_sde. They
 * draw from whatever noise sampler the context carries (ComfyUI: default_noise_sampler for the first
 * four, the Brownian tree for dpmpp_3m_sde).
 */
import { evalModel, report, type SamplerContext, type SamplerOptions } from './common.js';

const lambdaOf = (sigma: number): number => -Math.log(sigma);

export async function sampleDdpm(ctx: SamplerContext): Promise<Float32Array> {
  const { sigmas } = ctx;
  let x = ctx.x;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const sigmaPrev = sigmas[i + 1]!;
    const denoised = await evalModel(ctx, x, sigma, i);
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    const acp = 1 / (sigma * sigma + 1);
    const acpPrev = 1 / (sigmaPrev * sigmaPrev + 1);
    const alpha = acp / acpPrev;
    const scaleIn = Math.sqrt(1 + sigma * sigma);
    const a = Math.sqrt(1 / alpha);
    const b = (1 - alpha) / Math.sqrt(1 - acp);
    const next = new Float32Array(x.length);
    for (let k = 0; k < x.length; k++) {
      const eps = (x[k]! - denoised[k]!) / sigma;
      next[k] = a * (x[k]! / scaleIn - b * eps);
    }
    if (sigmaPrev > 0) {
      const c = Math.sqrt(((1 - alpha) * (1 - acpPrev)) / (1 - acp));
      const noise = ctx.noiseSampler(sigma, sigmaPrev);
      const up = Math.sqrt(1 + sigmaPrev * sigmaPrev);
      for (let k = 0; k < x.length; k++) next[k] = (next[k]! + c * noise[k]!) * up;
    }
    x = next;
  }
  return x;
}

export async function sampleErSde(ctx: SamplerContext, options: SamplerOptions = {}, maxStage = 3): Promise<Float32Array> {
  const { sigmas } = ctx;
  const sNoise = options.sNoise ?? 1;
  const scaler = (v: number): number => v * (Math.exp(v ** 0.3) + 10);
  const points = 200;
  // er_lambda = sigma / alpha = sigma for eps / v models.
  const erL = Array.from(sigmas, (s) => Math.exp(-lambdaOf(s)));
  let x = ctx.x;
  let oldDenoised: Float32Array | null = null;
  let oldDenoisedD: Float32Array | null = null;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const denoised = await evalModel(ctx, x, sigma, i);
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    const stage = Math.min(maxStage, i + 1);
    const n = x.length;
    if (sigmas[i + 1] === 0) {
      x = denoised;
    } else {
      const ls = erL[i]!;
      const lt = erL[i + 1]!;
      const alphaS = sigma / ls;
      const alphaT = sigmas[i + 1]! / lt;
      const r = scaler(lt) / scaler(ls);
      const next = new Float32Array(n);
      for (let k = 0; k < n; k++) next[k] = (alphaT / alphaS) * r * x[k]! + alphaT * (1 - r) * denoised[k]!;
      if (stage >= 2 && oldDenoised) {
        const dt = lt - ls;
        const stepSize = -dt / points;
        let s = 0;
        let su = 0;
        for (let p = 0; p < points; p++) {
          const pos = lt + p * stepSize;
          const sc = scaler(pos);
          s += 1 / sc;
          su += (pos - ls) / sc;
        }
        s *= stepSize;
        su *= stepSize;
        const denoisedD = new Float32Array(n);
        const c2 = alphaT * (dt + s * scaler(lt));
        for (let k = 0; k < n; k++) {
          denoisedD[k] = (denoised[k]! - oldDenoised[k]!) / (ls - erL[i - 1]!);
          next[k] = next[k]! + c2 * denoisedD[k]!;
        }
        if (stage >= 3 && oldDenoisedD) {
          const c3 = alphaT * ((dt * dt) / 2 + su * scaler(lt));
          const span = (ls - erL[i - 2]!) / 2;
          for (let k = 0; k < n; k++) next[k] = next[k]! + c3 * ((denoisedD[k]! - oldDenoisedD[k]!) / span);
        }
        oldDenoisedD = denoisedD;
      }
      if (sNoise > 0) {
        const v = lt * lt - ls * ls * r * r;
        const amp = v > 0 ? Math.sqrt(v) : 0;
        const noise = ctx.noiseSampler(sigma, sigmas[i + 1]!);
        for (let k = 0; k < n; k++) next[k] = next[k]! + alphaT * noise[k]! * sNoise * amp;
      }
      x = next;
    }
    oldDenoised = denoised;
  }
  return x;
}

/** h * phi_1(h) and h * phi_2(h) of exponential integrators. */
const phi1h = (h: number): number => Math.expm1(h);
const phi2h = (h: number): number => (Math.expm1(h) - h) / h;

export async function sampleSeeds2(ctx: SamplerContext, options: SamplerOptions = {}, r = 0.5): Promise<Float32Array> {
  const { sigmas } = ctx;
  const eta = options.eta ?? 1;
  const sNoise = options.sNoise ?? 1;
  const inject = eta > 0 && sNoise > 0;
  const fac = 1 / (2 * r);
  let x = ctx.x;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const sigmaNext = sigmas[i + 1]!;
    const denoised = await evalModel(ctx, x, sigma, i);
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    if (sigmaNext === 0) {
      x = denoised;
      continue;
    }
    const ls = lambdaOf(sigma);
    const lt = lambdaOf(sigmaNext);
    const h = lt - ls;
    const hEta = h * (eta + 1);
    const ls1 = ls + r * (lt - ls);
    const sigmaS1 = Math.exp(-ls1);
    const alphaS1 = sigmaS1 * Math.exp(ls1);
    const alphaT = sigmaNext * Math.exp(lt);
    const n = x.length;
    const x2 = new Float32Array(n);
    const a1 = (sigmaS1 / sigma) * Math.exp(-r * h * eta);
    const b1 = alphaS1 * phi1h(-r * hEta);
    for (let k = 0; k < n; k++) x2[k] = a1 * x[k]! - b1 * denoised[k]!;
    let sde: Float32Array | null = null;
    if (inject) {
      const amp = Math.sqrt(-Math.expm1(-2 * r * h * eta));
      const noise = ctx.noiseSampler(sigma, sigmaS1);
      sde = noise.map((v) => amp * v);
      for (let k = 0; k < n; k++) x2[k] = x2[k]! + sde[k]! * sigmaS1 * sNoise;
    }
    const denoised2 = await evalModel(ctx, x2, sigmaS1, i);
    const a = (sigmaNext / sigma) * Math.exp(-h * eta);
    const b = alphaT * phi1h(-hEta);
    const next = new Float32Array(n);
    for (let k = 0; k < n; k++) next[k] = a * x[k]! - b * (denoised[k]! + fac * (denoised2[k]! - denoised[k]!));
    if (inject && sde) {
      const seg = (r - 1) * h * eta;
      const amp = Math.sqrt(-Math.expm1(2 * seg));
      const noise = ctx.noiseSampler(sigmaS1, sigmaNext);
      const e = Math.exp(seg);
      for (let k = 0; k < n; k++) next[k] = next[k]! + (sde[k]! * e + amp * noise[k]!) * sigmaNext * sNoise;
    }
    x = next;
  }
  return x;
}

export async function sampleSeeds3(ctx: SamplerContext, options: SamplerOptions = {}, r1 = 1 / 3, r2 = 2 / 3): Promise<Float32Array> {
  const { sigmas } = ctx;
  const eta = options.eta ?? 1;
  const sNoise = options.sNoise ?? 1;
  const inject = eta > 0 && sNoise > 0;
  let x = ctx.x;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const sigmaNext = sigmas[i + 1]!;
    const denoised = await evalModel(ctx, x, sigma, i);
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    if (sigmaNext === 0) {
      x = denoised;
      continue;
    }
    const ls = lambdaOf(sigma);
    const lt = lambdaOf(sigmaNext);
    const h = lt - ls;
    const hEta = h * (eta + 1);
    const ls1 = ls + r1 * (lt - ls);
    const ls2 = ls + r2 * (lt - ls);
    const sigmaS1 = Math.exp(-ls1);
    const sigmaS2 = Math.exp(-ls2);
    const alphaS1 = sigmaS1 * Math.exp(ls1);
    const alphaS2 = sigmaS2 * Math.exp(ls2);
    const alphaT = sigmaNext * Math.exp(lt);
    const n = x.length;

    const x2 = new Float32Array(n);
    const c1 = (sigmaS1 / sigma) * Math.exp(-r1 * h * eta);
    const d1 = alphaS1 * phi1h(-r1 * hEta);
    for (let k = 0; k < n; k++) x2[k] = c1 * x[k]! - d1 * denoised[k]!;
    let sde: Float32Array | null = null;
    if (inject) {
      const amp = Math.sqrt(-Math.expm1(-2 * r1 * h * eta));
      sde = ctx.noiseSampler(sigma, sigmaS1).map((v) => amp * v);
      for (let k = 0; k < n; k++) x2[k] = x2[k]! + sde[k]! * sigmaS1 * sNoise;
    }
    const denoised2 = await evalModel(ctx, x2, sigmaS1, i);

    const a32 = (r2 / r1) * phi2h(-r2 * hEta);
    const a31 = phi1h(-r2 * hEta) - a32;
    const c2 = (sigmaS2 / sigma) * Math.exp(-r2 * h * eta);
    const x3 = new Float32Array(n);
    for (let k = 0; k < n; k++) x3[k] = c2 * x[k]! - alphaS2 * (a31 * denoised[k]! + a32 * denoised2[k]!);
    if (inject && sde) {
      const seg = (r1 - r2) * h * eta;
      const e = Math.exp(seg);
      const amp = Math.sqrt(-Math.expm1(2 * seg));
      const noise = ctx.noiseSampler(sigmaS1, sigmaS2);
      for (let k = 0; k < n; k++) {
        sde[k] = sde[k]! * e + amp * noise[k]!;
        x3[k] = x3[k]! + sde[k]! * sigmaS2 * sNoise;
      }
    }
    const denoised3 = await evalModel(ctx, x3, sigmaS2, i);

    const b3 = phi2h(-hEta) / r2;
    const b1 = phi1h(-hEta) - b3;
    const c3 = (sigmaNext / sigma) * Math.exp(-h * eta);
    const next = new Float32Array(n);
    for (let k = 0; k < n; k++) next[k] = c3 * x[k]! - alphaT * (b1 * denoised[k]! + b3 * denoised3[k]!);
    if (inject && sde) {
      const seg = (r2 - 1) * h * eta;
      const e = Math.exp(seg);
      const amp = Math.sqrt(-Math.expm1(2 * seg));
      const noise = ctx.noiseSampler(sigmaS2, sigmaNext);
      for (let k = 0; k < n; k++) next[k] = next[k]! + (sde[k]! * e + amp * noise[k]!) * sigmaNext * sNoise;
    }
    x = next;
  }
  return x;
}

export async function sampleDpmpp3mSde(ctx: SamplerContext, options: SamplerOptions = {}): Promise<Float32Array> {
  const { sigmas } = ctx;
  const eta = options.eta ?? 1;
  const sNoise = options.sNoise ?? 1;
  let x = ctx.x;
  if (sigmas.length <= 1) return x;
  let den1: Float32Array | null = null;
  let den2: Float32Array | null = null;
  let h: number | null = null;
  let h1: number | null = null;
  let h2: number | null = null;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const sigmaNext = sigmas[i + 1]!;
    const denoised = await evalModel(ctx, x, sigma, i);
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    const n = x.length;
    if (sigmaNext === 0) {
      x = denoised;
    } else {
      h = lambdaOf(sigmaNext) - lambdaOf(sigma);
      const hEta = h * (eta + 1);
      const alphaT = sigmaNext * Math.exp(lambdaOf(sigmaNext));
      const next = new Float32Array(n);
      const a = (sigmaNext / sigma) * Math.exp(-h * eta);
      const b = alphaT * -Math.expm1(-hEta);
      for (let k = 0; k < n; k++) next[k] = a * x[k]! + b * denoised[k]!;
      const phi2 = Math.expm1(-hEta) / hEta + 1;
      if (h2 !== null && h1 !== null && den1 && den2) {
        const r0 = h1 / h;
        const r1 = h2 / h;
        const phi3 = phi2 / hEta - 0.5;
        for (let k = 0; k < n; k++) {
          const d10 = (denoised[k]! - den1[k]!) / r0;
          const d11 = (den1[k]! - den2[k]!) / r1;
          const d1 = d10 + ((d10 - d11) * r0) / (r0 + r1);
          const d2 = (d10 - d11) / (r0 + r1);
          next[k] = next[k]! + alphaT * phi2 * d1 - alphaT * phi3 * d2;
        }
      } else if (h1 !== null && den1) {
        const r = h1 / h;
        for (let k = 0; k < n; k++) next[k] = next[k]! + alphaT * phi2 * ((denoised[k]! - den1[k]!) / r);
      }
      if (eta > 0 && sNoise > 0) {
        const amp = sigmaNext * Math.sqrt(-Math.expm1(-2 * h * eta)) * sNoise;
        const noise = ctx.noiseSampler(sigma, sigmaNext);
        for (let k = 0; k < n; k++) next[k] = next[k]! + noise[k]! * amp;
      }
      x = next;
    }
    den2 = den1;
    den1 = denoised;
    h2 = h1;
    h1 = h;
  }
  return x;
}
