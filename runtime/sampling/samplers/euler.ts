/** k-diffusion sample_euler / sample_euler_ancestral (no churn: ComfyUI's defaults). */
import { ancestralStep, addScaled, evalModel, report, toD, type SamplerContext, type SamplerOptions } from './common.js';

export async function sampleEuler(ctx: SamplerContext): Promise<Float32Array> {
  const { sigmas } = ctx;
  let x = ctx.x;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const denoised = await evalModel(ctx, x, sigma, i);
    const d = toD(x, sigma, denoised);
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    x = addScaled(Float32Array.from(x), sigmas[i + 1]! - sigma, d);
  }
  return x;
}

export async function sampleEulerAncestral(ctx: SamplerContext, options: SamplerOptions = {}): Promise<Float32Array> {
  const { sigmas } = ctx;
  const eta = options.eta ?? 1;
  const sNoise = options.sNoise ?? 1;
  let x = ctx.x;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const denoised = await evalModel(ctx, x, sigma, i);
    const { sigmaDown, sigmaUp } = ancestralStep(sigma, sigmas[i + 1]!, eta);
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    if (sigmaDown === 0) {
      x = denoised;
    } else {
      const d = toD(x, sigma, denoised);
      const next = addScaled(Float32Array.from(x), sigmaDown - sigma, d);
      x = addScaled(next, sNoise * sigmaUp, ctx.noiseSampler(sigma, sigmas[i + 1]!));
    }
  }
  return x;
}
