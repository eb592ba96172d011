/**
 * Deterministic multistep samplers of ComfyUI's k-diffusion: lms (Adams-Bashforth on sigma with
 * Lagrange coefficients), ipndm / ipndm_v (improved PNDM, fixed and variable step), deis (tab mode,
 * numeric integration on the VP time axis), and heunpp2. ipndm, ipndm_v and deis report the initial
 * x at every callback, as ComfyUI does (they advance x_next and never reassign x).
 */
import { f32 } from '../f32.js';
import { evalModel, report, type SamplerContext } from './common.js';

/** Integral over [a, b] of the Lagrange basis polynomial j on the nodes `ts` (Gauss-Legendre, exact here). */
function lagrangeIntegral(ts: number[], j: number, a: number, b: number): number {
  const nodes = [-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526];
  const weights = [0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538];
  let sum = 0;
  for (let q = 0; q < 4; q++) {
    const tau = 0.5 * (b - a) * nodes[q]! + 0.5 * (a + b);
    let prod = 1;
    for (let k = 0; k < ts.length; k++) if (k !== j) prod *= (tau - ts[k]!) / (ts[j]! - ts[k]!);
    sum += weights[q]! * prod;
  }
  return 0.5 * (b - a) * sum;
}

export async function sampleLms(ctx: SamplerContext, order = 4): Promise<Float32Array> {
  const { sigmas } = ctx;
  let x = ctx.x;
  const ds: Float32Array[] = [];
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const denoised = await evalModel(ctx, x, sigma, i);
    const d = new Float32Array(x.length);
    for (let k = 0; k < x.length; k++) d[k] = (x[k]! - denoised[k]!) / sigma;
    ds.push(d);
    if (ds.length > order) ds.shift();
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    if (sigmas[i + 1] === 0) {
      x = denoised;
      continue;
    }
    const cur = Math.min(i + 1, order);
    const nodes = Array.from({ length: cur }, (_, k) => sigmas[i - k]!);
    const next = Float32Array.from(x);
    for (let j = 0; j < cur; j++) {
      const c = lagrangeIntegral(nodes, j, sigmas[i]!, sigmas[i + 1]!);
      const dj = ds[ds.length - 1 - j]!;
      for (let k = 0; k < x.length; k++) next[k] = next[k]! + c * dj[k]!;
    }
    x = next;
  }
  return x;
}

/** Shared loop of ipndm / ipndm_v / deis: `combine` gives x_next from x_cur, d_cur and the history. */
async function bufferedMultistep(
  ctx: SamplerContext,
  maxOrder: number,
  combine: (i: number, order: number, xCur: Float32Array, dCur: Float32Array, buffer: Float32Array[], denoised: Float32Array) => Float32Array,
): Promise<Float32Array> {
  const { sigmas } = ctx;
  const x0 = ctx.x;
  let xNext = ctx.x;
  const buffer: Float32Array[] = [];
  for (let i = 0; i < sigmas.length - 1; i++) {
    const tCur = sigmas[i]!;
    const xCur = xNext;
    const denoised = await evalModel(ctx, xCur, tCur, i);
    await report(ctx, { i, x: x0, sigma: tCur, sigmaHat: tCur, denoised });
    const dCur = new Float32Array(xCur.length);
    for (let k = 0; k < xCur.length; k++) dCur[k] = (xCur[k]! - denoised[k]!) / tCur;
    xNext = combine(i, Math.min(maxOrder, i + 1), xCur, dCur, buffer, denoised);
    if (buffer.length === maxOrder - 1) {
      buffer.shift();
      buffer.push(dCur);
    } else buffer.push(dCur);
  }
  return xNext;
}

/** x + dt * sum(c_j * d_j) over the current derivative and the history (newest first). */
function step(xCur: Float32Array, dt: number, coeffs: number[], ds: Float32Array[]): Float32Array {
  const out = new Float32Array(xCur.length);
  for (let k = 0; k < out.length; k++) {
    let acc = 0;
    for (let j = 0; j < coeffs.length; j++) acc += coeffs[j]! * ds[j]![k]!;
    out[k] = xCur[k]! + dt * acc;
  }
  return out;
}

export function sampleIpndm(ctx: SamplerContext, maxOrder = 4): Promise<Float32Array> {
  const { sigmas } = ctx;
  return bufferedMultistep(ctx, maxOrder, (i, order, xCur, dCur, buf, denoised) => {
    const tNext = sigmas[i + 1]!;
    const dt = tNext - sigmas[i]!;
    if (tNext === 0) return denoised;
    const hist = [dCur, buf[buf.length - 1]!, buf[buf.length - 2]!, buf[buf.length - 3]!];
    const table: Record<number, number[]> = {
      1: [1],
      2: [3 / 2, -1 / 2],
      3: [23 / 12, -16 / 12, 5 / 12],
      4: [55 / 24, -59 / 24, 37 / 24, -9 / 24],
    };
    const c = table[order]!;
    return step(xCur, dt, c, hist.slice(0, c.length));
  });
}

export function sampleIpndmV(ctx: SamplerContext, maxOrder = 4): Promise<Float32Array> {
  const t = ctx.sigmas;
  return bufferedMultistep(ctx, maxOrder, (i, order, xCur, dCur, buf, denoised) => {
    const tNext = t[i + 1]!;
    const hn = tNext - t[i]!;
    if (tNext === 0) return denoised;
    const hist = [dCur, buf[buf.length - 1]!, buf[buf.length - 2]!, buf[buf.length - 3]!];
    let c: number[];
    if (order === 1) c = [1];
    else {
      const h1 = t[i]! - t[i - 1]!;
      if (order === 2) c = [(2 + hn / h1) / 2, -(hn / h1) / 2];
      else {
        const h2 = t[i - 1]! - t[i - 2]!;
        const temp1 = (1 - (hn / (3 * (hn + h1))) * ((hn * (hn + h1)) / (h1 * (h1 + h2)))) / 2;
        if (order === 3) {
          c = [(2 + hn / h1) / 2 + temp1, -(hn / h1) / 2 - (1 + h1 / h2) * temp1, (temp1 * h1) / h2];
        } else {
          const h3 = t[i - 2]! - t[i - 3]!;
          const temp2 =
            ((1 - hn / (3 * (hn + h1))) / 2 + ((1 - hn / (2 * (hn + h1))) * hn) / (6 * (hn + h1 + h2))) *
            ((hn * (hn + h1) * (hn + h1 + h2)) / (h1 * (h1 + h2) * (h1 + h2 + h3)));
          const r = (h1 * (h1 + h2)) / (h2 * (h2 + h3));
          c = [
            (2 + hn / h1) / 2 + temp1 + temp2,
            -(hn / h1) / 2 - (1 + h1 / h2) * temp1 - (1 + h1 / h2 + r) * temp2,
            (temp1 * h1) / h2 + (h1 / h2 + r * (1 + h2 / h3)) * temp2,
            ((-temp2 * r) * h1) / h2,
          ];
        }
      }
    }
    return step(xCur, hn, c, hist.slice(0, c.length));
  });
}

/**
 * DEIS "tab" coefficients: sigmas mapped to VP time with EDM's default range (sigma 0.002..80), then
 * Riemann sums (10000 points, like ComfyUI) of the VP integrand times each Lagrange basis polynomial.
 */
export function deisCoefficients(sigmas: Float32Array, maxOrder: number, n = 10000): number[][] {
  const epsS = 1e-3;
  const lmin = f32(Math.log(f32(f32(f32(0.002) * f32(0.002)) + 1)));
  const lmax = f32(Math.log(f32(f32(f32(80) * f32(80)) + 1)));
  const betaD = f32(f32(2 * f32(f32(lmin / f32(epsS)) - lmax)) / f32(epsS - 1));
  const betaMin = f32(lmax - f32(0.5 * betaD));
  const beta1 = f32(betaD + betaMin);
  const ts = Array.from(sigmas, (s) => {
    const l = f32(Math.log(f32(f32(s * s) + 1)));
    return f32(f32(f32(Math.sqrt(f32(f32(betaMin * betaMin) + f32(f32(2 * betaD) * l)))) - betaMin) / betaD);
  });
  const integrand = (tau: number): number => {
    const alpha = Math.exp(-0.5 * tau * tau * (beta1 - betaMin) - tau * betaMin);
    const dLogAlpha = -(tau * (beta1 - betaMin) + betaMin);
    return (-0.5 * dLogAlpha) / Math.sqrt(alpha * (1 - alpha));
  };
  const out: number[][] = [];
  for (let i = 0; i < ts.length - 1; i++) {
    const order = Math.min(i + 1, maxOrder);
    if (order === 1) {
      out.push([]);
      continue;
    }
    const tCur = ts[i]!;
    const tNext = ts[i + 1]!;
    const dtau = (tNext - tCur) / n;
    const prev = Array.from({ length: order }, (_, k) => ts[i - k]!);
    const coeffs = new Array<number>(order).fill(0);
    const stepT = (tNext - tCur) / (n - 1);
    for (let p = 0; p < n; p++) {
      const tau = p < n / 2 ? tCur + stepT * p : tNext - stepT * (n - 1 - p);
      const w = integrand(tau);
      for (let j = 0; j < order; j++) {
        let poly = 1;
        for (let k = 0; k < order; k++) if (k !== j) poly *= (tau - prev[k]!) / (prev[j]! - prev[k]!);
        coeffs[j] = coeffs[j]! + w * poly;
      }
    }
    out.push(coeffs.map((c) => c * dtau));
  }
  return out;
}

export function sampleDeis(ctx: SamplerContext, maxOrder = 3): Promise<Float32Array> {
  const { sigmas } = ctx;
  const coeffs = deisCoefficients(sigmas, maxOrder);
  return bufferedMultistep(ctx, maxOrder, (i, order0, xCur, dCur, buf) => {
    const tNext = sigmas[i + 1]!;
    const order = tNext <= 0 ? 1 : order0;
    if (order === 1) return step(xCur, tNext - sigmas[i]!, [1], [dCur]);
    const hist = [dCur, buf[buf.length - 1]!, buf[buf.length - 2]!, buf[buf.length - 3]!];
    return step(xCur, 1, coeffs[i]!, hist.slice(0, order));
  });
}

export async function sampleHeunpp2(ctx: SamplerContext): Promise<Float32Array> {
  const { sigmas } = ctx;
  const sEnd = sigmas[sigmas.length - 1]!;
  let x = ctx.x;
  const d = (xv: Float32Array, s: number, den: Float32Array) => xv.map((v, k) => (v - den[k]!) / s);
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const denoised = await evalModel(ctx, x, sigma, i);
    const d1 = d(x, sigma, denoised);
    await report(ctx, { i, x, sigma, sigmaHat: sigma, denoised });
    const dt = sigmas[i + 1]! - sigma;
    let dPrime: Float32Array;
    if (sigmas[i + 1] === sEnd) {
      dPrime = d1;
    } else {
      const x2 = x.map((v, k) => v + d1[k]! * dt);
      const d2 = d(x2, sigmas[i + 1]!, await evalModel(ctx, x2, sigmas[i + 1]!, i));
      if (sigmas[i + 2] === sEnd) {
        const w2 = sigmas[i + 1]! / (2 * sigmas[0]!);
        const w1 = 1 - w2;
        dPrime = d1.map((v, k) => v * w1 + d2[k]! * w2);
      } else {
        const dt2 = sigmas[i + 2]! - sigmas[i + 1]!;
        const x3 = x2.map((v, k) => v + d2[k]! * dt2);
        const d3 = d(x3, sigmas[i + 2]!, await evalModel(ctx, x3, sigmas[i + 2]!, i));
        const w = 3 * sigmas[0]!;
        const w2 = sigmas[i + 1]! / w;
        const w3 = sigmas[i + 2]! / w;
        const w1 = 1 - w2 - w3;
        dPrime = d1.map((v, k) => w1 * v + w2 * d2[k]! + w3 * d3[k]!);
      }
    }
    x = x.map((v, k) => v + dPrime[k]! * dt);
  }
  return x;
}
