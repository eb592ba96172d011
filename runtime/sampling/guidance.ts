/**
 * Guidance on top of the CFG denoiser for what ComfyUI does with model_options: post-CFG hooks that
 * read the negative prediction (the *_cfg_pp samplers, cfg1 shortcut disabled) and a replaced CFG
 * formula (sampler_cfg_function, e.g. RescaleCFG). Both need the positive and negative predictions
 * apart, so each side is evaluated as its own model call through makeCfgDenoiser (the same UNet work as
 * one batch of two, and every conditioning feature of makeCfgDenoiser applies per side).
 */
import { makeCfgDenoiser, type CfgDenoiserOptions } from './cfg.js';
import type { Conditioning, EpsModel, GuidedDenoiser, Shape4, StepInfo } from './types.js';

/** Combines the cond and uncond predictions (x0 space) of one step into the guided one. */
export type CfgFunction = (args: { cond: Float32Array; uncond: Float32Array; cfg: number; x: Float32Array; sigma: number; shape: Shape4 }) => Float32Array;

export interface GuidedDenoiserOptions extends CfgDenoiserOptions {
  /** Replaces uncond + (cond - uncond) * cfg. */
  cfgFunction?: CfgFunction;
}

export function makeGuidedDenoiser(options: GuidedDenoiserOptions): GuidedDenoiser {
  const { cfgFunction, ...base } = options;
  const { cfg, shape } = base;
  const side = (c: Conditioning, model: EpsModel) => makeCfgDenoiser({ ...base, model, positive: c, negative: c, cfg: 1 });
  // The negative side runs alone, but the model must still see it as the uncond half (SDXL picks its y by it).
  const asUncond: EpsModel = (xIn, callShape, t, cond) => base.model(xIn, callShape, t, { ...cond, condOrUncond: cond.condOrUncond.map(() => 'uncond' as const) });
  const condD = side(base.positive, base.model);
  const uncondD = side(base.negative, asUncond);
  const both = async (x: Float32Array, sigma: number, step: StepInfo) => {
    const cond = await condD(x, sigma, step);
    const uncond = await uncondD(x, sigma, step);
    let denoised: Float32Array;
    if (cfgFunction) denoised = cfgFunction({ cond, uncond, cfg, x, sigma, shape });
    else {
      denoised = new Float32Array(x.length);
      for (let i = 0; i < x.length; i++) denoised[i] = uncond[i]! + (cond[i]! - uncond[i]!) * cfg;
    }
    return { denoised, uncond };
  };
  const plain = cfgFunction ? async (x: Float32Array, sigma: number, step: StepInfo) => (await both(x, sigma, step)).denoised : makeCfgDenoiser(base);
  return Object.assign(plain, { withUncond: both });
}
