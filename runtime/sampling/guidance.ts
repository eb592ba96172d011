/**
 * Guidance on top of the CFG denoiser for what ComfyUI does with model_options: post-CFG hooks that
 * read the negative prediction (the *_cfg_pp samplers, cfg1 shortcut disabled) and a replaced CFG
 * formula (sampler_cfg_function, e.g. RescaleCFG). Both sides come from one calc_cond_batch
 * (makeCfgDenoiser's `combine` / `onPredictions` hooks), so areas, masks and their twins apply as in
 * plain CFG.
 */
import { makeCfgDenoiser, type CfgDenoiserOptions } from './cfg.js';
import type { GuidedDenoiser, Shape4, StepInfo } from './types.js';

/** Combines the cond and uncond predictions (x0 space) of one step into the guided one. */
export type CfgFunction = (args: { cond: Float32Array; uncond: Float32Array; cfg: number; x: Float32Array; sigma: number; shape: Shape4 }) => Float32Array;

export interface GuidedDenoiserOptions extends CfgDenoiserOptions {
  /** Replaces uncond + (cond - uncond) * cfg. */
  cfgFunction?: CfgFunction;
}

export function makeGuidedDenoiser(options: GuidedDenoiserOptions): GuidedDenoiser {
  const { cfgFunction, ...base } = options;
  const combine = cfgFunction ? { combine: cfgFunction } : {};
  const plain = makeCfgDenoiser({ ...base, ...combine });
  // The post-CFG hook needs the negative prediction even at cfg 1 (ComfyUI disables the shortcut for it).
  let uncond: Float32Array | undefined;
  const withNegative = makeCfgDenoiser({
    ...base,
    ...combine,
    alwaysUncond: true,
    onPredictions: (c, u, sigma) => {
      base.onPredictions?.(c, u, sigma);
      uncond = u;
    },
  });
  const both = async (x: Float32Array, sigma: number, step: StepInfo) => {
    const denoised = await withNegative(x, sigma, step);
    return { denoised, uncond: uncond! };
  };
  return Object.assign(plain, { withUncond: both });
}
