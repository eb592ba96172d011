/**
 * Property tests on a toy data distribution with a known exact denoiser: every element is
 * x0 ~ N(mu_i, s^2), so E[x0 | x_sigma] = (s^2 x + sigma^2 mu) / (s^2 + sigma^2), and the probability
 * flow ODE has the closed form x(sigma) - mu = (x_T - mu) * sqrt(s^2 + sigma^2) / sqrt(s^2 + sigma_T^2).
 */
import { describe, expect, it } from 'vitest';
import { ModelSampling } from '../../runtime/sampling/model-sampling.js';
import { runSampler } from '../../runtime/sampling/sample.js';
import { karrasSigmas, scheduleSigmas } from '../../runtime/sampling/schedulers.js';
import type { Denoiser, Shape4 } from '../../runtime/sampling/types.js';

const ms = new ModelSampling();
const S = 0.5;

/** Seeded N(0, 1) source local to the tests (mulberry32 + Box-Muller). */
function gaussian(seed: number): (n: number) => Float32Array {
  let a = seed >>> 0;
  const uniform = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return (n) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(uniform() || 1e-12)) * Math.cos(2 * Math.PI * uniform());
    return out;
  };
}

function exactDenoiser(mu: Float32Array): Denoiser {
  return async (x, sigma) => x.map((v, i) => (S * S * v + sigma * sigma * mu[i]!) / (S * S + sigma * sigma));
}

/** x_T drawn from the exact marginal at sigma_T: mu + z * sqrt(s^2 + sigma_T^2). */
function start(mu: Float32Array, z: Float32Array, sigmaT: number): Float32Array {
  const c = Math.sqrt(S * S + sigmaT * sigmaT);
  return mu.map((m, i) => m + z[i]! * c);
}

function stats(v: ArrayLike<number>): { mean: number; std: number } {
  let m = 0;
  for (let i = 0; i < v.length; i++) m += v[i]!;
  m /= v.length;
  let q = 0;
  for (let i = 0; i < v.length; i++) q += (v[i]! - m) ** 2;
  return { mean: m, std: Math.sqrt(q / v.length) };
}

function shapeFor(n: number): Shape4 {
  return [1, 1, 1, n];
}

describe('convergence order on the exact Gaussian ODE', () => {
  const n = 64;
  const mu = Float32Array.from({ length: n }, (_, i) => 2 * Math.sin(i));
  const z = Float32Array.from({ length: n }, (_, i) => Math.cos(3 * i + 1));

  async function error(sampler: string, steps: number): Promise<number> {
    // Stop at sigma 0.3 so the closed form applies at the end (no jump to sigma 0).
    const sigmas = karrasSigmas(steps + 1, 0.3, 14.6).subarray(0, steps + 1);
    const sigmaT = sigmas[0]!;
    const sigmaEnd = sigmas[steps]!;
    const out = await runSampler({
      sampler,
      samplerOptions: { eta: 0 },
      denoiser: exactDenoiser(mu),
      modelSampling: ms,
      sigmas,
      x: start(mu, z, sigmaT),
      shape: shapeFor(n),
      noiseSampler: () => new Float32Array(n),
    });
    let e = 0;
    for (let i = 0; i < n; i++) e = Math.max(e, Math.abs(out[i]! - (mu[i]! + z[i]! * Math.sqrt(S * S + sigmaEnd * sigmaEnd))));
    return e;
  }

  const cases: Array<[string, number, number]> = [
    ['euler', 0.85, 1.3],
    ['ddim', 0.85, 1.3],
    ['heun', 1.8, 3.5],
    ['dpm_2', 1.8, 3.5],
    ['dpmpp_2m', 1.8, 3.8],
    ['uni_pc', 1.8, 3.8],
    ['uni_pc_bh2', 1.8, 3.8],
    // With eta = 0 the stochastic solvers reduce to their deterministic cores.
    ['euler_ancestral', 0.85, 1.3],
    ['dpm_2_ancestral', 1.8, 3.5],
    ['dpmpp_2s_ancestral', 1.8, 3.5],
    ['dpmpp_sde', 1.8, 3.5],
    ['dpmpp_2m_sde', 1.8, 3.8],
  ];
  it.each(cases)('%s has order in [%d, %d]', async (sampler, lo, hi) => {
    const e1 = await error(sampler, 32);
    const e2 = await error(sampler, 64);
    const order = Math.log2(e1 / e2);
    expect(order).toBeGreaterThan(lo);
    expect(order).toBeLessThan(hi);
    expect(e2).toBeLessThan(sampler === 'euler' || sampler === 'ddim' || sampler === 'euler_ancestral' ? 0.02 : 1e-3);
  });
});

describe('deterministic samplers land on the exact ODE solution', () => {
  const n = 4096;
  const mu = gaussian(1)(n).map((v) => 2 * v);
  const z = gaussian(2)(n);
  const zStd = stats(z).std;

  it.each(['euler', 'heun', 'dpm_2', 'dpmpp_2m', 'uni_pc', 'uni_pc_bh2', 'ddim'])('%s, karras 100 steps to sigma 0', async (sampler) => {
    const sigmas = scheduleSigmas(ms, 'karras', 100, { sampler });
    const out = await runSampler({
      sampler,
      denoiser: exactDenoiser(mu),
      modelSampling: ms,
      sigmas,
      x: start(mu, z, sigmas[0]!),
      shape: shapeFor(n),
      noiseSampler: () => new Float32Array(n),
    });
    // The flow maps x_T - mu = z * sqrt(s^2 + sigma_T^2) to x_0 - mu = z * s.
    let maxErr = 0;
    for (let i = 0; i < n; i++) maxErr = Math.max(maxErr, Math.abs(out[i]! - (mu[i]! + z[i]! * S)));
    // Euler is first order; the others are second order (UniPC drops to first order on its last step).
    expect(maxErr).toBeLessThan(sampler === 'euler' || sampler === 'ddim' ? 0.05 : 0.005);
    const r = stats(out.map((v, i) => (v - mu[i]!) / S));
    expect(Math.abs(r.mean - stats(z).mean)).toBeLessThan(0.01);
    expect(Math.abs(r.std / zStd - 1)).toBeLessThan(0.02);
  });
});

describe('stochastic samplers reach N(mu, s^2) over many samples', () => {
  const n = 20000;
  const mu = gaussian(3)(n).map((v) => 2 * v);

  it.each(['euler_ancestral', 'dpm_2_ancestral', 'dpmpp_2s_ancestral', 'dpmpp_sde', 'dpmpp_2m_sde'])('%s, karras 300 steps', async (sampler) => {
    const sigmas = scheduleSigmas(ms, 'karras', 300, { sampler });
    const draw = gaussian(11);
    const out = await runSampler({
      sampler,
      denoiser: exactDenoiser(mu),
      modelSampling: ms,
      sigmas,
      x: start(mu, draw(n), sigmas[0]!),
      shape: shapeFor(n),
      noiseSampler: () => draw(n),
    });
    const r = stats(out.map((v, i) => (v - mu[i]!) / S));
    expect(Math.abs(r.mean)).toBeLessThan(0.03);
    expect(Math.abs(r.std - 1)).toBeLessThan(0.04);
  });

  it('lcm follows its own variance recursion (it is not an exact sampler for non-LCM models)', async () => {
    const sigmas = scheduleSigmas(ms, 'karras', 50);
    const draw = gaussian(12);
    const out = await runSampler({
      sampler: 'lcm',
      denoiser: exactDenoiser(mu),
      modelSampling: ms,
      sigmas,
      x: start(mu, draw(n), sigmas[0]!),
      shape: shapeFor(n),
      noiseSampler: () => draw(n),
    });
    // r = x - mu: r <- c r with c = s^2 / (s^2 + sigma^2), then + sigma_next * z.
    let variance = S * S + sigmas[0]! ** 2;
    for (let i = 0; i < sigmas.length - 1; i++) {
      const c = (S * S) / (S * S + sigmas[i]! ** 2);
      variance = c * c * variance + sigmas[i + 1]! ** 2;
    }
    const r = stats(out.map((v, i) => v - mu[i]!));
    expect(Math.abs(r.mean)).toBeLessThan(0.02);
    expect(Math.abs(r.std / Math.sqrt(variance) - 1)).toBeLessThan(0.02);
  });
});
