/**
 * Classifier-free guidance around an eps model, following ComfyUI's sampling_function / calc_cond_batch:
 * each side (positive, negative) is a list of entries that may carry areas, masks, strengths, timestep
 * ranges and ControlNets (cond-resolve.ts); every active entry is evaluated (batched where shapes allow),
 * the side's prediction is their weighted average (cond-batch.ts), and
 * `denoised = uncond + (cond - uncond) * cfg`. With cfg == 1 the negative side is skipped.
 */
import { calcCondBatch } from './cond-batch.js';
import { resolveConds } from './cond-resolve.js';
import type { ModelSampling } from './model-sampling.js';
import { SamplingValidationError, type Conditioning, type Denoiser, type EpsModel, type Shape4 } from './types.js';

export { broadcastHint, repeatTokens, repeatToBatch } from './cond-tensors.js';

export interface CfgDenoiserOptions {
  model: EpsModel;
  positive: Conditioning;
  negative: Conditioning;
  cfg: number;
  modelSampling: ModelSampling;
  /** Shape of the latent batch x the denoiser will receive. */
  shape: Shape4;
  /** Checked before every model call (cond and uncond may be two calls). */
  signal?: AbortSignal;
  /** Inpainting models: the extra input channels of one entry for the full latent [B, k, H, W]. */
  concat?: (entry: Conditioning) => Float32Array;
  /** Sees both sides' predictions per model evaluation (uncond is zeros when cfg 1 skips it). */
  onPredictions?: (cond: Float32Array, uncond: Float32Array, sigma: number) => void;
  /**
   * Replaces `uncond + (cond - uncond) * cfg` (ComfyUI's sampler_cfg_function, e.g. RescaleCFG); both sides
   * are then always evaluated, with their areas, masks and twins as above.
   */
  combine?: (args: { cond: Float32Array; uncond: Float32Array; cfg: number; x: Float32Array; sigma: number; shape: Shape4 }) => Float32Array;
  /** Evaluate the negative side even at cfg 1 (ComfyUI's disable_cfg1_optimization). */
  alwaysUncond?: boolean;
}

export function makeCfgDenoiser(options: CfgDenoiserOptions): Denoiser {
  const { model, cfg, modelSampling: ms, shape } = options;
  if (!Number.isFinite(cfg) || cfg < 0) throw new SamplingValidationError(`cfg must be a finite number >= 0, got ${cfg}`);
  const resolveCtx = options.concat ? { shape, ms, concat: options.concat } : { shape, ms };
  const { cond, uncond } = resolveConds(options.positive, options.negative, resolveCtx);
  const dims = new Set([...cond, ...uncond].map((c) => c.model.dim));
  if (dims.size > 1) throw new SamplingValidationError(`positive and negative contexts differ in width (${[...dims].join(' vs ')})`);
  // math.isclose(cfg, 1.0): with a scale of one the negative prediction cancels out.
  const skipUncond = Math.abs(cfg - 1) <= 1e-9 && !options.combine && !options.alwaysUncond;
  const ctx = { model, ms, shape, signal: options.signal };

  return async (x, sigma) => {
    const [c, u] = skipUncond ? [...(await calcCondBatch([cond], x, sigma, ctx)), new Float32Array(x.length)] : await calcCondBatch([cond, uncond], x, sigma, ctx);
    options.onPredictions?.(c!, u!, sigma);
    if (skipUncond) return c!;
    if (options.combine) return options.combine({ cond: c!, uncond: u!, cfg, x, sigma, shape });
    const out = new Float32Array(x.length);
    for (let i = 0; i < out.length; i++) out[i] = u![i]! + (c![i]! - u![i]!) * cfg;
    return out;
  };
}
