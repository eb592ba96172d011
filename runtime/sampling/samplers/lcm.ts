/**
 * k-diffusion sample_lcm as ComfyUI defines it: jump to the prediction, then re-noise to the next
 * sigma with the model's own noise_scaling (not the max-denoise variant).
 */
import { evalModel, report, type SamplerContext, type SamplerOptions } from './common.js';

export async function sampleLcm(ctx: SamplerContext, options: SamplerOptions = {}): Promise<Float32Array> {
  const { sigmas } = ctx;
  const sNoise = options.sNoise ?? 1;
  let x = ctx.x;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const sigmaNext = sigmas[i + 1]!;
    const denoised = await evalModel(ctx, x, sigma, i);
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    x = denoised;
    if (sigmaNext > 0) {
      let noise = ctx.noiseSampler(sigma, sigmaNext);
      if (sNoise !== 1) noise = noise.map((v) => v * sNoise);
      x = ctx.modelSampling.noiseScaling(sigmaNext, noise, denoised, false);
    }
  }
  return x;
}
