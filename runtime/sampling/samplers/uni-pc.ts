/**
 * UniPC (Zhao et al. 2023), multistep predictor-corrector with B(h) = h ("bh1") or expm1(h) ("bh2"),
 * data prediction, as ComfyUI's extra_samplers/uni_pc.py runs it on k-diffusion sigmas: the solver
 * works in variance-preserving coordinates (x / sqrt(1 + sigma^2)), a final sigma of 0 is replaced by
 * 0.001, the order is min(3, steps - 1) with lower orders at the start and end, the model is evaluated
 * once per step (the corrector's evaluation is reused as the next step's history) and the last step
 * runs the predictor only.
 */
import { f32 } from '../f32.js';
import { evalModel, report, type SamplerContext } from './common.js';

export type UniPcVariant = 'bh1' | 'bh2';

/**
 * ComfyUI's SigmaConvert schedule, rounded like its float32 tensors. The rounding matters at the
 * 0.001 end point, where 1 - alpha^2 cancels catastrophically in float32.
 */
const logMeanCoeff = (s: number): number => f32(0.5 * f32(Math.log(f32(1 / f32(f32(s * s) + 1)))));
const marginalAlpha = (s: number): number => f32(Math.exp(logMeanCoeff(s)));
const marginalStd = (s: number): number => f32(Math.sqrt(f32(1 - f32(Math.exp(f32(2 * logMeanCoeff(s)))))));
const marginalLambda = (s: number): number => {
  const lmc = logMeanCoeff(s);
  const logStd = f32(0.5 * f32(Math.log(f32(1 - f32(Math.exp(f32(2 * lmc)))))));
  return f32(lmc - logStd);
};

/** Solves A x = b (small, dense) by Gaussian elimination with partial pivoting. */
function solve(a: number[][], b: number[]): number[] {
  const n = b.length;
  const m = a.map((rowVals, i) => [...rowVals.slice(0, n), b[i]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[p]![c]!)) p = r;
    [m[c], m[p]] = [m[p]!, m[c]!];
    for (let r = c + 1; r < n; r++) {
      const f = m[r]![c]! / m[c]![c]!;
      for (let k = c; k <= n; k++) m[r]![k] = m[r]![k]! - f * m[c]![k]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = m[r]![n]!;
    for (let k = r + 1; k < n; k++) s -= m[r]![k]! * x[k]!;
    x[r] = s / m[r]![r]!;
  }
  return x;
}

export async function sampleUniPc(ctx: SamplerContext, variant: UniPcVariant = 'bh1'): Promise<Float32Array> {
  const ts = Float32Array.from(ctx.sigmas);
  if (ts[ts.length - 1] === 0) ts[ts.length - 1] = 0.001;
  const steps = ts.length - 1;
  if (steps < 1) return ctx.x;
  const order = Math.min(3, steps - 1);

  // Data prediction from VP-space x: the denoiser works in sigma space, so scale there and back.
  let stepIndex = 0;
  const modelFn = async (xvp: Float32Array, t: number): Promise<Float32Array> => {
    const up = Math.sqrt(t * t + 1);
    const input = xvp.map((v) => v * up);
    const denoised = await evalModel(ctx, input, t, stepIndex);
    const alpha = marginalAlpha(t);
    const std = marginalStd(t);
    const out = new Float32Array(xvp.length);
    for (let k = 0; k < out.length; k++) {
      const eps = (input[k]! - denoised[k]!) / t;
      out[k] = (xvp[k]! - std * eps) / alpha;
    }
    return out;
  };

  const update = async (
    x: Float32Array,
    models: Float32Array[],
    times: number[],
    t: number,
    stepOrder: number,
    useCorrector: boolean,
  ): Promise<{ x: Float32Array; model: Float32Array | null }> => {
    const tPrev0 = times[times.length - 1]!;
    const model0 = models[models.length - 1]!;
    const lambdaPrev0 = marginalLambda(tPrev0);
    const lambdaT = marginalLambda(t);
    const sigmaPrev0 = marginalStd(tPrev0);
    const sigmaT = marginalStd(t);
    const alphaT = Math.exp(logMeanCoeff(t));
    const h = lambdaT - lambdaPrev0;

    const rks: number[] = [];
    const d1s: Float32Array[] = [];
    for (let i = 1; i < stepOrder; i++) {
      const rk = (marginalLambda(times[times.length - 1 - i]!) - lambdaPrev0) / h;
      rks.push(rk);
      const mi = models[models.length - 1 - i]!;
      d1s.push(mi.map((v, k) => (v - model0[k]!) / rk));
    }
    rks.push(1);

    const hh = -h;
    const hPhi1 = Math.expm1(hh);
    const bH = variant === 'bh1' ? hh : Math.expm1(hh);
    let hPhiK = hPhi1 / hh - 1;
    let factorial = 1;
    const R: number[][] = [];
    const b: number[] = [];
    for (let i = 1; i <= stepOrder; i++) {
      R.push(rks.map((r) => r ** (i - 1)));
      b.push((hPhiK * factorial) / bH);
      factorial *= i + 1;
      hPhiK = hPhiK / hh - 1 / factorial;
    }

    let rhosP: number[] = [];
    if (d1s.length > 0) {
      rhosP = stepOrder === 2 ? [0.5] : solve(R.slice(0, -1).map((r) => r.slice(0, -1)), b.slice(0, -1));
    }
    const rhosC = useCorrector ? (stepOrder === 1 ? [0.5] : solve(R, b)) : [];

    const ratio = sigmaT / sigmaPrev0;
    const base = new Float32Array(x.length);
    for (let k = 0; k < x.length; k++) base[k] = ratio * x[k]! - alphaT * hPhi1 * model0[k]!;

    const xt = Float32Array.from(base);
    for (let j = 0; j < d1s.length; j++) {
      const c = alphaT * bH * rhosP[j]!;
      const dj = d1s[j]!;
      for (let k = 0; k < xt.length; k++) xt[k] = xt[k]! - c * dj[k]!;
    }
    if (!useCorrector) return { x: xt, model: null };

    const modelT = await modelFn(xt, t);
    const corrected = Float32Array.from(base);
    for (let j = 0; j < d1s.length; j++) {
      const c = alphaT * bH * rhosC[j]!;
      const dj = d1s[j]!;
      for (let k = 0; k < corrected.length; k++) corrected[k] = corrected[k]! - c * dj[k]!;
    }
    const cLast = alphaT * bH * rhosC[rhosC.length - 1]!;
    for (let k = 0; k < corrected.length; k++) corrected[k] = corrected[k]! - cLast * (modelT[k]! - model0[k]!);
    return { x: corrected, model: modelT };
  };

  const startScale = f32(Math.sqrt(f32(1 + f32(ts[0]! * ts[0]!))));
  let x: Float32Array = ctx.x.map((v) => v / startScale);
  const models: Float32Array[] = [];
  const times: number[] = [];
  for (stepIndex = 0; stepIndex < steps; stepIndex++) {
    if (stepIndex === 0) {
      models.push(await modelFn(x, ts[0]!));
      times.push(ts[0]!);
    } else if (stepIndex < order) {
      const t = ts[stepIndex]!;
      const res = await update(x, models, times, t, stepIndex, true);
      x = res.x;
      models.push(res.model ?? (await modelFn(x, t)));
      times.push(t);
    } else {
      const last = stepIndex === steps - 1 ? steps : stepIndex;
      for (let target = stepIndex; target <= last; target++) {
        const t = ts[target]!;
        const stepOrder = Math.min(order, steps + 1 - target);
        const useCorrector = target !== steps;
        const res = await update(x, models, times, t, stepOrder, useCorrector);
        x = res.x;
          for (let i = 0; i < order - 1; i++) {
          times[i] = times[i + 1]!;
          models[i] = models[i + 1]!;
        }
        times[times.length - 1] = t;
        if (target < steps) models[models.length - 1] = res.model ?? (await modelFn(x, t));
      }
    }
    // Like ComfyUI, the callback gets the solver's variance-preserving state x / sqrt(1 + sigma^2).
    await report(ctx, { i: stepIndex, x, sigma: ctx.sigmas[stepIndex]!, sigmaHat: ctx.sigmas[stepIndex]!, denoised: models[models.length - 1]! });
  }
  const alphaEnd = marginalAlpha(ts[ts.length - 1]!);
  return x.map((v) => v / alphaEnd);
}
