/**
 * Shared types of the sampling layer. Tensors are flat row-major Float32Arrays with the shape carried
 * beside them; the model side (UNet / ControlNet) plugs in through `EpsModel` and `ControlNetModel`.
 */

export type Shape4 = [batch: number, channels: number, height: number, width: number];

/** A latent batch, NCHW. */
export interface Latent {
  data: Float32Array;
  shape: Shape4;
}

/** Where a model evaluation sits in the run; the same object shape for every call of one step. */
export interface StepInfo {
  /** 0-based index of the sampler step (sigmas[step] -> sigmas[step + 1]). */
  step: number;
  totalSteps: number;
  /** The full schedule of this run (float32 values), for hooks that need the step position. */
  sigmas: Float32Array;
}

/**
 * A k-diffusion denoiser: x in sigma space (x = x0 + sigma * n) for the full latent batch, returns the
 * prediction of x0 (`denoised`) with the same layout.
 */
export type Denoiser = (x: Float32Array, sigma: number, step: StepInfo) => Promise<Float32Array>;

/** A CFG denoiser that can also hand out the unguided (negative) prediction of the same step. */
export type GuidedDenoiser = Denoiser & {
  withUncond?: (x: Float32Array, sigma: number, step: StepInfo) => Promise<{ denoised: Float32Array; uncond: Float32Array }>;
};

/** Noise for ancestral / SDE steps: a fresh N(0, 1) tensor of the latent's numel per call. */
export type NoiseSampler = (sigma: number, sigmaNext: number) => Float32Array;

/** Initial noise, ComfyUI's prepare_noise: `torch.manual_seed(seed); torch.randn(shape)`. */
export type NoiseFn = (seed: number | bigint, shape: readonly number[]) => Float32Array;

/**
 * Opaque handle of a loaded ControlNet. The sampling layer only passes it through to the `EpsModel`,
 * which knows the concrete class behind it (e.g. via `instanceof`).
 */
export interface ControlNetModel {
  readonly name?: string;
}

/** A ControlNet attached to one conditioning, as ControlNetApplyAdvanced stores it. */
export interface ControlNetApplication {
  controlNet: ControlNetModel;
  /** Hint image NCHW in [0, 1], normally 8x the latent size; batch 1 or the latent batch. */
  hint: Float32Array;
  hintShape: Shape4;
  strength: number;
  /** Active window in sampling percent (0 = start, 1 = end); defaults 0 and 1. */
  startPercent?: number;
  endPercent?: number;
}

/**
 * Where a conditioning applies, ComfyUI's `area` (h, w, y, x): latent cells, or fractions of the latent
 * size resolved when sampling starts (ConditioningSetAreaPercentage).
 */
export interface CondArea {
  unit: 'cells' | 'fraction';
  height: number;
  width: number;
  y: number;
  x: number;
}

/** A MASK tensor [B, H, W], values normally in [0, 1]. */
export interface MaskTensor {
  data: Float32Array;
  shape: [batch: number, height: number, width: number];
}

/**
 * One side of the guidance (positive or negative prompt). ComfyUI's CONDITIONING is a list of entries;
 * this object is its first entry and `combined` holds the others (ConditioningCombine), so code that
 * only knows single prompts keeps working.
 */
export interface Conditioning {
  /** Text-encoder context [b, tokens, dim]; b is 1 or the latent batch. */
  context: Float32Array;
  contextShape: [batch: number, tokens: number, dim: number];
  /** Chained ControlNets in the order they were applied (each one's residuals are summed). */
  controls?: ControlNetApplication[];
  /** Restricts this entry to part of the latent (ConditioningSetArea*). */
  area?: CondArea;
  /** Weight of this entry where it applies (default 1). */
  strength?: number;
  /** Per-cell weight at any resolution, resized to the latent when sampling starts (ConditioningSetMask). */
  mask?: MaskTensor;
  maskStrength?: number;
  /** 'mask bounds': the area becomes the mask's bounding box (at least 8x8 cells). */
  setAreaToBounds?: boolean;
  /** Active window in sampling percent (ConditioningSetTimestepRange); defaults 0 and 1. */
  startPercent?: number;
  endPercent?: number;
  /** Inpainting-model inputs (InpaintModelConditioning): unscaled latent of the masked image, mask [B,1,H,W]. */
  concatLatent?: Latent;
  concatMask?: { data: Float32Array; shape: Shape4 };
  /** The old ControlNetApply: the negative side's plain entries get this entry's ControlNets too. */
  controlApplyToUncond?: boolean;
  /** The further entries of this conditioning list, in order. */
  combined?: Conditioning[];
}

/** A ControlNet that is active for the current model call, hint already broadcast to the call's batch. */
export interface ActiveControl {
  controlNet: ControlNetModel;
  hint: Float32Array;
  hintShape: Shape4;
  strength: number;
}

/** What one batched model call conditions on. */
export interface CondBatch {
  /** Stacked context [B, tokens, dim] matching the x batch (e.g. [uncond..., cond...]). */
  context: Float32Array;
  contextShape: [batch: number, tokens: number, dim: number];
  /** Active ControlNets in chain order; empty when none applies at this sigma. */
  controls: ActiveControl[];
  /** Which half each batch item belongs to, ComfyUI's `cond_or_uncond` (per chunk of the latent batch). */
  condOrUncond: ('cond' | 'uncond')[];
  /** The step's sigma (ComfyUI's transformer_options["sigmas"]), for patches that act on part of the schedule. */
  sigma?: number;
  /** The conditioning entry each chunk was built from (for per-entry model inputs such as SDXL's y). */
  entries?: Conditioning[];
  /** Extra input channels concatenated after x (inpainting models' c_concat) [B, k, H, W]. */
  concat?: { data: Float32Array; shape: Shape4 };
}

/**
 * The UNet seen from the sampler: eps prediction for an input already scaled by calculateInput.
 * `timestep` is the integer schedule index (as a float), `shape` the NCHW shape of `xIn`.
 */
export type EpsModel = (xIn: Float32Array, shape: Shape4, timestep: number, cond: CondBatch) => Promise<Float32Array>;

/** Progress report, once per sampler step (k-diffusion's callback). The arrays are the sampler's own: read, don't write. */
export interface StepProgress {
  step: number;
  totalSteps: number;
  sigma: number;
  /** x at the start of the step, in model (scaled) space. */
  x: Float32Array;
  /** The (CFG) prediction of x0 at this step, model space. */
  denoised: Float32Array;
  shape: Shape4;
}

/** Thrown when the AbortSignal fires during sampling. */
export class InterruptedError extends Error {
  constructor(message = 'sampling interrupted') {
    super(message);
    this.name = 'InterruptedError';
  }
}

/** Bad arguments to the sampling layer (unknown names, out-of-range values, shape mismatches). */
export class SamplingValidationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SamplingValidationError';
  }
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
