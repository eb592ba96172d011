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

/**
 * k-diffusion's DPMSolver steps with torch's float32 rounding at every tensor op, in the order the
 * Python expressions evaluate (Python-float scalars are rounded to float32 first, as torch does).
 */
class DpmSolver {
  constructor(private readonly ctx: SamplerContext) {}

  /** eps prediction at time t (callback step index i for the denoiser's StepInfo). */
  async eps(x: Float32Array, t: number, i: number): Promise<Eps> {
    const sigma = sigmaOfT(t);
    const denoised = await this.ctx.denoiser(x, sigma, stepInfo(this.ctx, Math.min(i, this.ctx.sigmas.length - 2)));
    const eps = new Float32Array(x.length);
    for (let k = 0; k < x.length; k++) eps[k] = f32(f32(x[k]! - denoised[k]!) / sigma);
    return { eps, denoised };
  }

  /** x - c * e, elementwise in float32. */
  private sub(x: Float32Array, c: number, e: Float32Array): Float32Array {
    const out = new Float32Array(x.length);
    for (let k = 0; k < out.length; k++) out[k] = f32(x[k]! - f32(c * e[k]!));
    return out;
  }

  /** a - c * (b - e), elementwise in float32. */
  private subDiff(a: Float32Array, c: number, b: Float32Array, e: Float32Array): Float32Array {
    const out = new Float32Array(a.length);
    for (let k = 0; k < out.length; k++) out[k] = f32(a[k]! - f32(c * f32(b[k]! - e[k]!)));
    return out;
  }

  step1(x: Float32Array, t: number, tNext: number, e: Float32Array): Float32Array {
    const h = f32(tNext - t);
    return this.sub(x, f32(sigmaOfT(tNext) * f32(Math.expm1(h))), e);
  }

  private async epsR1(x: Float32Array, t: number, h: number, e: Float32Array, r1: number, i: number, cache: Map<string, Float32Array>): Promise<Float32Array> {
    let er1 = cache.get('r1');
    if (!er1) {
      const r1h = f32(f32(r1) * h);
      const s1 = f32(t + r1h);
      const u1 = this.sub(x, f32(sigmaOfT(s1) * f32(Math.expm1(r1h))), e);
      er1 = (await this.eps(u1, s1, i)).eps;
      cache.set('r1', er1);
    }
    return er1;
  }

  async step2(x: Float32Array, t: number, tNext: number, e: Float32Array, r1: number, i: number, cache: Map<string, Float32Array>): Promise<Float32Array> {
    const h = f32(tNext - t);
    const er1 = await this.epsR1(x, t, h, e, r1, i, cache);
    const sn = sigmaOfT(tNext);
    const em = f32(Math.expm1(h));
    const a = this.sub(x, f32(sn * em), e);
    return this.subDiff(a, f32(f32(sn / f32(2 * r1)) * em), er1, e);
  }

  async step3(x: Float32Array, t: number, tNext: number, e: Float32Array, i: number, cache: Map<string, Float32Array>, r1 = 1 / 3, r2 = 2 / 3): Promise<Float32Array> {
    const h = f32(tNext - t);
    const er1 = await this.epsR1(x, t, h, e, r1, i, cache);
    const r2h = f32(f32(r2) * h);
    const s2 = f32(t + r2h);
    const sig2 = sigmaOfT(s2);
    const em2 = f32(Math.expm1(r2h));
    const a2 = this.sub(x, f32(sig2 * em2), e);
    const u2 = this.subDiff(a2, f32(f32(sig2 * f32(r2 / r1)) * f32(f32(em2 / r2h) - 1)), er1, e);
    const er2 = (await this.eps(u2, s2, i)).eps;
    const sn = sigmaOfT(tNext);
    const em = f32(Math.expm1(h));
    const a3 = this.sub(x, f32(sn * em), e);
    return this.subDiff(a3, f32(f32(sn / f32(r2)) * f32(f32(em / h) - 1)), er2, e);
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
  while (forward ? s < f32(tEnd - f32(1e-5)) : s > f32(tEnd + f32(1e-5))) {
    const cache = new Map<string, Float32Array>();
    const t = forward ? Math.min(tEnd, f32(s + f32(h))) : Math.max(tEnd, f32(s + f32(h)));
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
    const error = f32(f32(Math.sqrt(sq)) / f32(Math.sqrt(n)));
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
