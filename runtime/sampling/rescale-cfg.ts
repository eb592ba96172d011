/**
 * RescaleCFG (Lin et al. 2024, "Common diffusion noise schedules and sample steps are flawed"): CFG
 * on v-space predictions, with the guided result's per-item standard deviation pulled back towards
 * the positive prediction's by `multiplier`. A CfgFunction, like ComfyUI's sampler_cfg_function.
 */
import type { CfgFunction } from './guidance.js';
import { f32 } from './f32.js';

/** Unbiased standard deviation of a slice. */
function std(v: Float64Array): number {
  let mean = 0;
  for (const a of v) mean += a;
  mean /= v.length;
  let ss = 0;
  for (const a of v) ss += (a - mean) ** 2;
  return Math.sqrt(ss / Math.max(v.length - 1, 1));
}

/**
 * The float32 op order of ComfyUI's rescale_cfg matters at zero-terminal-SNR sigmas (~4500), where
 * x / (sigma^2 + 1) and the v-space round trip cancel catastrophically, so every step is rounded.
 */
export function rescaleCfg(multiplier: number): CfgFunction {
  return ({ cond, uncond, cfg, x, sigma, shape }) => {
    const sg = f32(sigma);
    const s2 = f32(f32(sg * sg) + 1);
    const root = f32(Math.sqrt(s2));
    const m = f32(multiplier);
    const m1 = f32(1 - multiplier);
    const cf = f32(cfg);
    const item = shape[1] * shape[2] * shape[3];
    const out = new Float32Array(x.length);
    // ComfyUI hands the function x - denoised and rebuilds denoised as x - (x - denoised), in float32.
    const toV = (xo: number, xs: number, d: number): number => f32(f32(f32(xs - f32(xo - f32(xo - d))) * root) / sg);
    for (let b = 0; b < shape[0]; b++) {
      const vc = new Float64Array(item);
      const vcfg = new Float64Array(item);
      for (let i = 0; i < item; i++) {
        const k = b * item + i;
        const xs = f32(x[k]! / s2);
        const c = toV(x[k]!, xs, cond[k]!);
        const u = toV(x[k]!, xs, uncond[k]!);
        vc[i] = c;
        vcfg[i] = f32(u + f32(cf * f32(c - u)));
      }
      const ratio = f32(f32(std(vc)) / f32(std(vcfg)));
      for (let i = 0; i < item; i++) {
        const k = b * item + i;
        const xo = x[k]!;
        const xs = f32(xo / s2);
        const vFinal = f32(f32(m * f32(vcfg[i]! * ratio)) + f32(m1 * vcfg[i]!));
        const r = f32(xo - f32(xs - f32(f32(vFinal * sg) / root)));
        out[k] = f32(xo - r);
      }
    }
    return out;
  };
}
