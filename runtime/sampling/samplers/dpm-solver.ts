/**
 * k-diffusion's DPMSolver (Lu et al. 2022) as ComfyUI runs dpm_fast and dpm_adaptive: only the first
 * sigma and the last non-zero sigma of the schedule are used (t = -log sigma), the result stays at
 * sigma_min, and the callback fires once per solver step (dpm_adaptive: rejected steps too). With
 * ComfyUI's eta = 0 the noise draws are multiplied by zero, so none are taken here. Times follow
 * torch's float32 tensors, because dpm_adaptive's accept/reject path depends on them.
 */
import { f32, linspaceF32 } from '../f32.js';
import { report, stepInfo, type SamplerContext } from './common.js';

type Eps = { eps: Float32Array; denoised: Float32Array };

const sigmaOfT = (t: number): number => f32(Math.exp(-t));

class DpmSolver {
  calls = 0;
  constructor(private readonly ctx: SamplerContext) {}

  /** eps prediction at time t (callback step index i for the denoiser's StepInfo). */
  async eps(x: Float32Array, t: number, i: number): Promise<Eps> {
    const sigma = sigmaOfT(t);
    const denoised = await this.ctx.denoiser(x, sigma, stepInfo(this.ctx, Math.min(i, this.ctx.sigmas.length - 2)));
    this.calls++;
    const eps = new Float32Array(x.length);
    for (let k = 0; k < x.length; k++) eps[k] = (x[k]! - denoised[k]!) / sigma;
    return { eps, denoised };
  }

  private lin(x: Float32Array, terms: Array<[number, Float32Array]>): Float32Array {
    const out = Float32Array.from(x);
    for (const [c, v] of terms) for (let k = 0; k < out.length; k++) out[k] = out[k]! + c * v[k]!;
    return out;
  }

  step1(x: Float32Array, t: number, tNext: number, e: Float32Array): Float32Array {
    const h = tNext - t;
    return this.lin(x, [[-sigmaOfT(tNext) * Math.expm1(h), e]]);
  }

  async step2(x: Float32Array, t: number, tNext: number, e: Float32Array, r1: number, i: number, cache: Map<string, Float32Array>): Promise<Float32Array> {
    const h = tNext - t;
    const s1 = t + r1 * h;
    let er1 = cache.get('r1');
    if (!er1) {
      const u1 = this.lin(x, [[-sigmaOfT(s1) * Math.expm1(r1 * h), e]]);
      er1 = (await this.eps(u1, s1, i)).eps;
      cache.set('r1', er1);
    }
    const sn = sigmaOfT(tNext);
    const em = Math.expm1(h);
    return this.lin(x, [
      [-sn * em, e],
      [(-sn / (2 * r1)) * em, er1],
      [(sn / (2 * r1)) * em, e],
    ]);
  }

  async step3(x: Float32Array, t: number, tNext: number, e: Float32Array, i: number, cache: Map<string, Float32Array>, r1 = 1 / 3, r2 = 2 / 3): Promise<Float32Array> {
    const h = tNext - t;
    const s1 = t + r1 * h;
    const s2 = t + r2 * h;
    let er1 = cache.get('r1');
    if (!er1) {
      const u1 = this.lin(x, [[-sigmaOfT(s1) * Math.expm1(r1 * h), e]]);
      er1 = (await this.eps(u1, s1, i)).eps;
      cache.set('r1', er1);
    }
    const c2 = sigmaOfT(s2) * (r2 / r1) * (Math.expm1(r2 * h) / (r2 * h) - 1);
    const u2 = this.lin(x, [
      [-sigmaOfT(s2) * Math.expm1(r2 * h), e],
      [-c2, er1],
      [c2, e],
    ]);
    const er2 = (await this.eps(u2, s2, i)).eps;
    const sn = sigmaOfT(tNext);
    const c3 = (sn / r2) * (Math.expm1(h) / h - 1);
    return this.lin(x, [
      [-sn * Math.expm1(h), e],
      [-c3, er2],
      [c3, e],
    ]);
  }
}

/** sigma_min for dpm_fast / dpm_adaptive: the last sigma, or the one before a final 0. */
function sigmaRange(sigmas: Float32Array): { sigmaMin: number; sigmaMax: number } {
  let sigmaMin = sigmas[sigmas.length - 1]!;
  if (sigmaMin === 0) sigmaMin = sigmas[sigmas.length - 2]!;
  return { sigmaMin, sigmaMax: sigmas[0]! };
}

export async function sampleDpmFast(ctx: SamplerContext): Promise<Float32Array> {
  const { sigmas } = ctx;
  if (sigmas.length <= 1) return ctx.x;
  const { sigmaMin, sigmaMax } = sigmaRange(sigmas);
  const nfe = sigmas.length - 1;
  const solver = new DpmSolver(ctx);
  const tStart = f32(-Math.log(sigmaMax));
  const tEnd = f32(-Math.log(sigmaMin));
  const m = Math.floor(nfe / 3) + 1;
  const ts = linspaceF32(tStart, tEnd, m + 1);
  const orders = nfe % 3 === 0 ? [...new Array<number>(m - 2).fill(3), 2, 1] : [...new Array<number>(m - 1).fill(3), nfe % 3];
  let x = ctx.x;
  for (let i = 0; i < orders.length; i++) {
    const t = ts[i]!;
    const tNext = ts[i + 1]!;
    const cache = new Map<string, Float32Array>();
    const { eps, denoised } = await solver.eps(x, t, i);
    await report(ctx, { i, x, sigma: sigmaOfT(t), sigmaHat: sigmaOfT(t), denoised });
    if (orders[i] === 1) x = solver.step1(x, t, tNext, eps);
    else if (orders[i] === 2) x = await solver.step2(x, t, tNext, eps, 1 / 2, i, cache);
    else x = await solver.step3(x, t, tNext, eps, i, cache);
  }
  return x;
}

export interface DpmAdaptiveOptions {
  order?: 2 | 3;
  rtol?: number;
  atol?: number;
  hInit?: number;
  pcoeff?: number;
  icoeff?: number;
  dcoeff?: number;
  acceptSafety?: number;
}

export async function sampleDpmAdaptive(ctx: SamplerContext, options: DpmAdaptiveOptions = {}): Promise<Float32Array> {
  const { sigmas } = ctx;
  if (sigmas.length <= 1) return ctx.x;
  const order = options.order ?? 3;
  const rtol = f32(options.rtol ?? 0.05);
  const atol = f32(options.atol ?? 0.0078);
  const { sigmaMin, sigmaMax } = sigmaRange(sigmas);
  const tStart = f32(-Math.log(sigmaMax));
  const tEnd = f32(-Math.log(sigmaMin));
  const forward = tEnd > tStart;
  let h = Math.abs(options.hInit ?? 0.05) * (forward ? 1 : -1);
  // PID step-size controller (k-diffusion PIDStepSizeController).
  const pc = options.pcoeff ?? 0;
  const ic = options.icoeff ?? 1;
  const dc = options.dcoeff ?? 0;
  const b1 = (pc + ic + dc) / order;
  const b2 = -(pc + 2 * dc) / order;
  const b3 = dc / order;
  const acceptSafety = options.acceptSafety ?? 0.81;
  let errs: number[] = [];
  const propose = (error: number): boolean => {
    const inv = 1 / (error + 1e-8);
    if (!errs.length) errs = [inv, inv, inv];
    errs[0] = inv;
    let factor = errs[0]! ** b1 * errs[1]! ** b2 * errs[2]! ** b3;
    factor = 1 + Math.atan(factor - 1);
    const accept = factor >= acceptSafety;
    if (accept) {
      errs[2] = errs[1]!;
      errs[1] = errs[0]!;
    }
    h *= factor;
    return accept;
  };

  const solver = new DpmSolver(ctx);
  let s = tStart;
  let x = ctx.x;
  let xPrev = x;
  let steps = 0;
  const n = x.length;
  while (forward ? s < f32(tEnd - 1e-5) : s > f32(tEnd + 1e-5)) {
    const cache = new Map<string, Float32Array>();
    const t = forward ? Math.min(tEnd, f32(s + h)) : Math.max(tEnd, f32(s + h));
    const { eps, denoised } = await solver.eps(x, s, steps);
    let xLow: Float32Array;
    let xHigh: Float32Array;
    if (order === 2) {
      xLow = solver.step1(x, s, t, eps);
      xHigh = await solver.step2(x, s, t, eps, 1 / 2, steps, cache);
    } else {
      xLow = await solver.step2(x, s, t, eps, 1 / 3, steps, cache);
      xHigh = await solver.step3(x, s, t, eps, steps, cache);
    }
    let sq = 0;
    for (let k = 0; k < n; k++) {
      const delta = Math.max(atol, f32(rtol * Math.max(Math.abs(xLow[k]!), Math.abs(xPrev[k]!))));
      const e = f32(f32(xLow[k]! - xHigh[k]!) / delta);
      sq += e * e;
    }
    const error = f32(f32(Math.sqrt(sq)) / Math.sqrt(n));
    if (propose(error)) {
      xPrev = xLow;
      x = xHigh;
      s = t;
    }
    steps++;
    await report(ctx, { i: steps - 1, x, sigma: sigmaOfT(s), sigmaHat: sigmaOfT(s), denoised });
  }
  return x;
}
