/**
 * SA-Solver (Xue et al. 2023, stochastic Adams predictor-corrector in data prediction) as ComfyUI's
 * k-diffusion runs it: predictor order 3, corrector order 4, noise (tau = 1) only while sigma lies
 * between percent_to_sigma(0.2) and percent_to_sigma(0.8), lower orders towards a final sigma 0, and
 * the callback reporting the predicted state. PECE re-evaluates the model after each correction.
 */
import { evalModel, report, type SamplerContext, type SamplerOptions } from './common.js';

/** log Gamma(n + 1) for small non-negative integers. */
const logFactorial = (n: number): number => {
  let s = 0;
  for (let k = 2; k <= n; k++) s += Math.log(k);
  return s;
};

/** (1 + tau^2) * integral_s^t exp((1 + tau^2) x) x^p dx with exp((1 + tau^2) t) factored out, p < order. */
function exponentialCoeffs(s: number, t: number, order: number, tau: number): number[] {
  const tauMul = 1 + tau * tau;
  const h = t - s;
  const terms = Array.from({ length: order }, (_, p) => t ** p - s ** p * Math.exp(-tauMul * h));
  const out: number[] = [];
  for (let p = 0; p < order; p++) {
    let acc = 0;
    for (let q = 0; q <= p; q++) {
      let lc = logFactorial(p) - logFactorial(q);
      if (tau > 0) lc -= (p - q) * Math.log(tauMul);
      acc += Math.exp(lc) * ((p - q) % 2 === 0 ? 1 : -1) * terms[q]!;
    }
    out.push(acc);
  }
  return out;
}

/** Solves sum_k lambda_k^p b_k = e_p (the transposed Vandermonde system) by Gaussian elimination. */
function solveVandermondeT(lambdas: number[], e: number[]): number[] {
  const n = lambdas.length;
  const m = Array.from({ length: n }, (_, p) => [...lambdas.map((l) => l ** p), e[p]!]);
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[piv]![c]!)) piv = r;
    [m[c], m[piv]] = [m[piv]!, m[c]!];
    for (let r = c + 1; r < n; r++) {
      const f = m[r]![c]! / m[c]![c]!;
      for (let k = c; k <= n; k++) m[r]![k] = m[r]![k]! - f * m[c]![k]!;
    }
  }
  const b = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let acc = m[r]![n]!;
    for (let k = r + 1; k < n; k++) acc -= m[r]![k]! * b[k]!;
    b[r] = acc / m[r]![r]!;
  }
  return b;
}

function adamsCoeffs(sigmaNext: number, currLambdas: number[], lambdaS: number, lambdaT: number, tau: number): number[] {
  const e = exponentialCoeffs(lambdaS, lambdaT, currLambdas.length, tau);
  const b = solveVandermondeT(currLambdas, e);
  const alphaT = sigmaNext * Math.exp(lambdaT);
  return b.map((v) => alphaT * v);
}

/** sum_j coeffs[j] * preds[j] (oldest first). */
function combine(preds: Float32Array[], coeffs: number[]): Float32Array {
  const out = new Float32Array(preds[0]!.length);
  for (let j = 0; j < preds.length; j++) {
    const p = preds[j]!;
    const c = coeffs[j]!;
    for (let k = 0; k < out.length; k++) out[k] = out[k]! + c * p[k]!;
  }
  return out;
}

export async function sampleSaSolver(ctx: SamplerContext, options: SamplerOptions & { usePece?: boolean } = {}): Promise<Float32Array> {
  const { sigmas } = ctx;
  if (sigmas.length <= 1) return ctx.x;
  const sNoise = options.sNoise ?? 1;
  const usePece = options.usePece ?? false;
  const predictorOrder = 3;
  const correctorOrder = 4;
  const maxUsed = Math.max(predictorOrder, correctorOrder);
  const lambdas = Array.from(sigmas, (s) => -Math.log(s));
  const startSigma = ctx.modelSampling.percentToSigma(0.2);
  const endSigma = ctx.modelSampling.percentToSigma(0.8);
  const tauOf = (sigma: number): number => (startSigma >= sigma && sigma >= endSigma ? 1 : 0);

  let x = ctx.x;
  let xPred = ctx.x;
  let h = 0;
  let tau = 0;
  let noise: Float32Array | null = null;
  let preds: Float32Array[] = [];
  const lowerToEnd = sigmas[sigmas.length - 1] === 0;
  for (let i = 0; i < sigmas.length - 1; i++) {
    let denoised = await evalModel(ctx, xPred, sigmas[i]!, i);
    await report(ctx, { i, x: xPred, sigma: sigmas[i]!, sigmaHat: sigmas[i]!, denoised });
    preds.push(denoised);
    preds = preds.slice(-maxUsed);
    let pOrder = Math.min(predictorOrder, preds.length);
    let cOrder = i === 0 || (sigmas[i + 1] === 0 && !usePece) ? 0 : Math.min(correctorOrder, preds.length);
    if (lowerToEnd) {
      pOrder = Math.min(pOrder, sigmas.length - 2 - i);
      cOrder = Math.min(cOrder, sigmas.length - 1 - i);
    }
    if (cOrder === 0) {
      x = xPred;
    } else {
      const b = adamsCoeffs(sigmas[i]!, lambdas.slice(i - cOrder + 1, i + 1), lambdas[i - 1]!, lambdas[i]!, tau);
      const corr = combine(preds.slice(-cOrder), b);
      const decay = (sigmas[i]! / sigmas[i - 1]!) * Math.exp(-(tau * tau) * h);
      const next = new Float32Array(x.length);
      for (let k = 0; k < x.length; k++) next[k] = decay * x[k]! + corr[k]!;
      if (tau > 0 && sNoise > 0 && noise) for (let k = 0; k < x.length; k++) next[k] = next[k]! + noise[k]!;
      x = next;
      if (usePece) {
        denoised = await evalModel(ctx, x, sigmas[i]!, i);
        preds[preds.length - 1] = denoised;
      }
    }
    if (sigmas[i + 1] === 0) {
      xPred = denoised;
    } else {
      tau = tauOf(sigmas[i + 1]!);
      const b = adamsCoeffs(sigmas[i + 1]!, lambdas.slice(i - pOrder + 1, i + 1), lambdas[i]!, lambdas[i + 1]!, tau);
      const pred = combine(preds.slice(-pOrder), b);
      h = lambdas[i + 1]! - lambdas[i]!;
      const decay = (sigmas[i + 1]! / sigmas[i]!) * Math.exp(-(tau * tau) * h);
      const next = new Float32Array(x.length);
      for (let k = 0; k < x.length; k++) next[k] = decay * x[k]! + pred[k]!;
      if (tau > 0 && sNoise > 0) {
        const amp = sigmas[i + 1]! * Math.sqrt(-Math.expm1(-2 * tau * tau * h)) * sNoise;
        noise = ctx.noiseSampler(sigmas[i]!, sigmas[i + 1]!).map((v) => v * amp);
        for (let k = 0; k < x.length; k++) next[k] = next[k]! + noise[k]!;
      }
      xPred = next;
    }
  }
  return xPred;
}
