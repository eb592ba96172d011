/** k-diffusion sample_heun, sample_dpm_2 and sample_dpm_2_ancestral (second-order, no churn). */
import { ancestralStep, addScaled, evalModel, report, toD, type SamplerContext, type SamplerOptions } from './common.js';

export async function sampleHeun(ctx: SamplerContext): Promise<Float32Array> {
  const { sigmas } = ctx;
  let x = ctx.x;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const sigmaNext = sigmas[i + 1]!;
    const denoised = await evalModel(ctx, x, sigma, i);
    const d = toD(x, sigma, denoised);
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    const dt = sigmaNext - sigma;
    if (sigmaNext === 0) {
      // The corrector would need the derivative at sigma 0, which is undefined: plain Euler.
      x = addScaled(Float32Array.from(x), dt, d);
    } else {
      const x2 = addScaled(Float32Array.from(x), dt, d);
      const d2 = toD(x2, sigmaNext, await evalModel(ctx, x2, sigmaNext, i));
      const next = Float32Array.from(x);
      for (let k = 0; k < next.length; k++) next[k] = next[k]! + ((d[k]! + d2[k]!) / 2) * dt;
      x = next;
    }
  }
  return x;
}

/** Geometric midpoint of two sigmas (the lerp of their logs at 0.5). */
function logMidpoint(a: number, b: number): number {
  return Math.exp(Math.log(a) + 0.5 * (Math.log(b) - Math.log(a)));
}

export async function sampleDpm2(ctx: SamplerContext): Promise<Float32Array> {
  const { sigmas } = ctx;
  let x = ctx.x;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const sigmaNext = sigmas[i + 1]!;
    const denoised = await evalModel(ctx, x, sigma, i);
    const d = toD(x, sigma, denoised);
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    if (sigmaNext === 0) {
      x = addScaled(Float32Array.from(x), sigmaNext - sigma, d);
    } else {
      const sigmaMid = logMidpoint(sigma, sigmaNext);
      const x2 = addScaled(Float32Array.from(x), sigmaMid - sigma, d);
      const d2 = toD(x2, sigmaMid, await evalModel(ctx, x2, sigmaMid, i));
      x = addScaled(Float32Array.from(x), sigmaNext - sigma, d2);
    }
  }
  return x;
}

export async function sampleDpm2Ancestral(ctx: SamplerContext, options: SamplerOptions = {}): Promise<Float32Array> {
  const { sigmas } = ctx;
  const eta = options.eta ?? 1;
  const sNoise = options.sNoise ?? 1;
  let x = ctx.x;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const denoised = await evalModel(ctx, x, sigma, i);
    const { sigmaDown, sigmaUp } = ancestralStep(sigma, sigmas[i + 1]!, eta);
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    const d = toD(x, sigma, denoised);
    if (sigmaDown === 0) {
      x = addScaled(Float32Array.from(x), sigmaDown - sigma, d);
    } else {
      const sigmaMid = logMidpoint(sigma, sigmaDown);
      const x2 = addScaled(Float32Array.from(x), sigmaMid - sigma, d);
      const d2 = toD(x2, sigmaMid, await evalModel(ctx, x2, sigmaMid, i));
      const next = addScaled(Float32Array.from(x), sigmaDown - sigma, d2);
      x = addScaled(next, sNoise * sigmaUp, ctx.noiseSampler(sigma, sigmas[i + 1]!));
    }
  }
  return x;
}
