/**
 * DPM-Solver++ family from k-diffusion as ComfyUI ships it, for eps / v models (alpha = 1 in the
 * k-diffusion parameterisation, lambda = -log sigma). The SDE variants take whatever NoiseSampler the
 * context carries; ComfyUI's default there is the torchsde Brownian tree (../brownian.ts).
 */
import { f32 } from '../f32.js';
import { ancestralStep, addScaled, evalModel, lin, report, toD, type SamplerContext, type SamplerOptions } from './common.js';

const lambdaOf = (sigma: number): number => -Math.log(sigma);
const sigmaOf = (lambda: number): number => Math.exp(-lambda);

export async function sampleDpmpp2m(ctx: SamplerContext): Promise<Float32Array> {
  const { sigmas } = ctx;
  let x = ctx.x;
  let oldDenoised: Float32Array | null = null;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const sigmaNext = sigmas[i + 1]!;
    const denoised = await evalModel(ctx, x, sigma, i);
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    const t = lambdaOf(sigma);
    const tNext = lambdaOf(sigmaNext);
    const h = tNext - t;
    // At sigmaNext = 0: h = inf, the ratio is 0 and -expm1(-h) = 1, so x becomes denoised.
    const ratio = sigmaOf(tNext) / sigmaOf(t);
    const coef = -Math.expm1(-h);
    if (oldDenoised === null || sigmaNext === 0) {
      x = lin(ratio, x, coef, denoised);
    } else {
      const hLast = t - lambdaOf(sigmas[i - 1]!);
      const r = hLast / h;
      const a = 1 + 1 / (2 * r);
      const b = 1 / (2 * r);
      x = lin(ratio, x, coef * a, denoised, -coef * b, oldDenoised);
    }
    oldDenoised = denoised;
  }
  return x;
}

export async function sampleDpmpp2sAncestral(ctx: SamplerContext, options: SamplerOptions = {}): Promise<Float32Array> {
  const { sigmas } = ctx;
  const eta = options.eta ?? 1;
  const sNoise = options.sNoise ?? 1;
  let x = ctx.x;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const sigmaNext = sigmas[i + 1]!;
    const denoised = await evalModel(ctx, x, sigma, i);
    const { sigmaDown, sigmaUp } = ancestralStep(sigma, sigmaNext, eta);
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    if (sigmaDown === 0) {
      x = addScaled(Float32Array.from(x), sigmaDown - sigma, toD(x, sigma, denoised));
    } else {
      const t = lambdaOf(sigma);
      const tNext = lambdaOf(sigmaDown);
      const h = tNext - t;
      const s = t + 0.5 * h;
      const x2 = lin(sigmaOf(s) / sigmaOf(t), x, -Math.expm1(-0.5 * h), denoised);
      const denoised2 = await evalModel(ctx, x2, sigmaOf(s), i);
      x = lin(sigmaOf(tNext) / sigmaOf(t), x, -Math.expm1(-h), denoised2);
    }
    // Both branches above built a fresh x, so adding in place is safe.
    if (sigmaNext > 0) x = addScaled(x, sNoise * sigmaUp, ctx.noiseSampler(sigma, sigmaNext));
  }
  return x;
}

export async function sampleDpmppSde(ctx: SamplerContext, options: SamplerOptions = {}): Promise<Float32Array> {
  const { sigmas } = ctx;
  const eta = options.eta ?? 1;
  const sNoise = options.sNoise ?? 1;
  const r = options.r ?? 0.5;
  let x = ctx.x;
  if (sigmas.length <= 1) return x;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const sigmaNext = sigmas[i + 1]!;
    const denoised = await evalModel(ctx, x, sigma, i);
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    if (sigmaNext === 0) {
      x = denoised;
      continue;
    }
    const lambdaS = lambdaOf(sigma);
    const lambdaT = lambdaOf(sigmaNext);
    const h = lambdaT - lambdaS;
    const lambdaS1 = lambdaS + r * h;
    const fac = 1 / (2 * r);
    // The Brownian tree quantises query times to 1e-6, so sigma_s_1 must be torch's float32 value.
    const ls32 = f32(-f32(Math.log(sigma)));
    const lambdaS1f = f32(ls32 + f32(r * f32(f32(-f32(Math.log(sigmaNext))) - ls32)));
    const sigmaS1 = f32(Math.exp(-lambdaS1f));
    const alphaS = sigma * Math.exp(lambdaS);
    const alphaS1 = sigmaS1 * Math.exp(lambdaS1);
    const alphaT = sigmaNext * Math.exp(lambdaT);

    // Step 1: ancestral half step to sigma_s1 for the second evaluation.
    const a1 = ancestralStep(sigmaOf(lambdaS), sigmaOf(lambdaS1), eta);
    const h1 = lambdaOf(a1.sigmaDown) - lambdaS;
    let x2 = lin((alphaS1 / alphaS) * Math.exp(-h1), x, -alphaS1 * Math.expm1(-h1), denoised);
    if (eta > 0 && sNoise > 0) x2 = addScaled(x2, alphaS1 * sNoise * a1.sigmaUp, ctx.noiseSampler(sigma, sigmaS1));
    const denoised2 = await evalModel(ctx, x2, sigmaS1, i);

    // Step 2: full step with the blended prediction.
    const a2 = ancestralStep(sigmaOf(lambdaS), sigmaOf(lambdaT), eta);
    const h2 = lambdaOf(a2.sigmaDown) - lambdaS;
    const k = -alphaT * Math.expm1(-h2);
    x = lin((alphaT / alphaS) * Math.exp(-h2), x, k * (1 - fac), denoised, k * fac, denoised2);
    if (eta > 0 && sNoise > 0) x = addScaled(x, alphaT * sNoise * a2.sigmaUp, ctx.noiseSampler(sigma, sigmaNext));
  }
  return x;
}

export async function sampleDpmpp2mSde(ctx: SamplerContext, options: SamplerOptions = {}): Promise<Float32Array> {
  const { sigmas } = ctx;
  const eta = options.eta ?? 1;
  const sNoise = options.sNoise ?? 1;
  const solverType = options.solverType ?? 'midpoint';
  let x = ctx.x;
  if (sigmas.length <= 1) return x;
  let oldDenoised: Float32Array | null = null;
  let hLast: number | null = null;
  let h: number | null = null;
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const sigmaNext = sigmas[i + 1]!;
    const denoised = await evalModel(ctx, x, sigma, i);
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    if (sigmaNext === 0) {
      x = denoised;
    } else {
      const lambdaS = lambdaOf(sigma);
      const lambdaT = lambdaOf(sigmaNext);
      h = lambdaT - lambdaS;
      const hEta = h * (eta + 1);
      const alphaT = sigmaNext * Math.exp(lambdaT);
      const phi1 = -Math.expm1(-hEta);
      x = lin((sigmaNext / sigma) * Math.exp(-h * eta), x, alphaT * phi1, denoised);
      if (oldDenoised !== null && hLast !== null) {
        const r = hLast / h;
        const c = solverType === 'heun' ? alphaT * (phi1 / -hEta + 1) * (1 / r) : 0.5 * alphaT * phi1 * (1 / r);
        for (let k = 0; k < x.length; k++) x[k] = x[k]! + c * (denoised[k]! - oldDenoised[k]!);
      }
      if (eta > 0 && sNoise > 0) {
        const std = sigmaNext * Math.sqrt(-Math.expm1(-2 * h * eta)) * sNoise;
        x = addScaled(x, std, ctx.noiseSampler(sigma, sigmaNext));
      }
    }
    oldDenoised = denoised;
    hLast = h;
  }
  return x;
}
