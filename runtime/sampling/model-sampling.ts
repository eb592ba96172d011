/**
 * ComfyUI's ModelSamplingDiscrete + EPS / V_PREDICTION, and the latent format (scale factor, preview
 * factors) that ComfyUI keeps on the model. Schedules are built in float64 and stored float32, exactly
 * where ComfyUI converts, because samplers and the timestep lookup see the float32 values.
 */
import { f32, linspaceF64 } from './f32.js';
import { SamplingValidationError } from './types.js';

export type Prediction = 'eps' | 'v';

export interface LatentFormat {
  /** process_latent_in multiplies by this (SD1.x 0.18215, SDXL 0.13025). */
  scaleFactor: number;
  /** Subtracted before scaling (0 for SD1.x / SDXL). */
  shiftFactor?: number;
  /** Linear latent -> RGB preview factors, [latentChannels][3]. */
  rgbFactors: number[][];
  rgbBias?: number[];
}

export const SD15_LATENT_FORMAT: LatentFormat = {
  scaleFactor: 0.18215,
  rgbFactors: [
    [0.3512, 0.2297, 0.3227],
    [0.325, 0.4974, 0.235],
    [-0.2829, 0.1762, 0.2721],
    [-0.212, -0.2616, -0.7177],
  ],
};

export const SDXL_LATENT_FORMAT: LatentFormat = {
  scaleFactor: 0.13025,
  rgbFactors: [
    [0.3651, 0.4232, 0.4341],
    [-0.2533, -0.0042, 0.1068],
    [0.1076, 0.1111, -0.0362],
    [-0.3165, -0.2492, -0.2188],
  ],
  rgbBias: [0.1084, -0.0175, -0.0011],
};

/** latent (VAE space) -> model space; torch multiplies by the float32 scalar. */
export function processLatentIn(format: LatentFormat, latent: Float32Array): Float32Array {
  const scale = f32(format.scaleFactor);
  const shift = f32(format.shiftFactor ?? 0);
  const out = new Float32Array(latent.length);
  for (let i = 0; i < latent.length; i++) out[i] = (latent[i]! - shift) * scale;
  return out;
}

/** model space -> latent (VAE space). */
export function processLatentOut(format: LatentFormat, samples: Float32Array): Float32Array {
  const scale = f32(format.scaleFactor);
  const shift = f32(format.shiftFactor ?? 0);
  const out = new Float32Array(samples.length);
  for (let i = 0; i < samples.length; i++) out[i] = samples[i]! / scale + shift;
  return out;
}

export interface ModelSamplingOptions {
  /** ComfyUI "linear" beta schedule endpoints (diffusers "scaled_linear"). */
  linearStart?: number;
  linearEnd?: number;
  timesteps?: number;
  prediction?: Prediction;
  latentFormat?: LatentFormat;
}

/** SD1.x / SDXL discrete-time model sampling (ComfyUI ModelSamplingDiscrete, sigma_data = 1). */
export class ModelSampling {
  readonly prediction: Prediction;
  readonly latentFormat: LatentFormat;
  readonly betas: Float64Array;
  readonly alphasCumprod: Float64Array;
  /** sqrt((1 - acp) / acp), stored float32 as ComfyUI's buffer. */
  readonly sigmas: Float32Array;
  /** log of the float64 sigmas, stored float32 (not the log of the float32 sigmas). */
  readonly logSigmas: Float32Array;

  constructor(options: ModelSamplingOptions = {}) {
    const linearStart = options.linearStart ?? 0.00085;
    const linearEnd = options.linearEnd ?? 0.012;
    const n = options.timesteps ?? 1000;
    if (!Number.isInteger(n) || n < 2) throw new SamplingValidationError(`timesteps must be an integer >= 2, got ${n}`);
    this.prediction = options.prediction ?? 'eps';
    if (this.prediction !== 'eps' && this.prediction !== 'v') {
      throw new SamplingValidationError(`unknown prediction type "${String(this.prediction)}" (valid: eps, v)`);
    }
    this.latentFormat = options.latentFormat ?? SD15_LATENT_FORMAT;

    const roots = linspaceF64(Math.sqrt(linearStart), Math.sqrt(linearEnd), n);
    this.betas = roots.map((r) => r * r);
    this.alphasCumprod = new Float64Array(n);
    this.sigmas = new Float32Array(n);
    this.logSigmas = new Float32Array(n);
    let acp = 1;
    for (let i = 0; i < n; i++) {
      acp *= 1 - this.betas[i]!;
      this.alphasCumprod[i] = acp;
      const sigma = Math.sqrt((1 - acp) / acp);
      this.sigmas[i] = sigma;
      this.logSigmas[i] = Math.log(sigma);
    }
  }

  get numTimesteps(): number {
    return this.sigmas.length;
  }

  get sigmaMin(): number {
    return this.sigmas[0]!;
  }

  get sigmaMax(): number {
    return this.sigmas[this.sigmas.length - 1]!;
  }

  /** Nearest schedule index on log sigma (ties to the lower index), as an integer-valued number. */
  sigmaToTimestep(sigma: number): number {
    const logSigma = f32(Math.log(f32(sigma)));
    let best = 0;
    let bestDist = Infinity;
    for (let i = 0; i < this.logSigmas.length; i++) {
      const d = Math.abs(f32(logSigma - this.logSigmas[i]!));
      if (d < bestDist) {
        bestDist = d;
        best = i;
      }
    }
    return best;
  }

  /** Sigma at a (fractional) timestep: linear interpolation of log sigma in float32. */
  timestepToSigma(timestep: number): number {
    const t = Math.min(Math.max(f32(timestep), 0), this.sigmas.length - 1);
    const lo = Math.floor(t);
    const hi = Math.ceil(t);
    const w = f32(t - lo);
    const logSigma = f32(f32(f32(1 - w) * this.logSigmas[lo]!) + f32(w * this.logSigmas[hi]!));
    return f32(Math.exp(logSigma));
  }

  /** ComfyUI percent_to_sigma: 0 -> "infinite" sigma, 1 -> 0, else sigma((1 - p) * 999). */
  percentToSigma(percent: number): number {
    if (percent <= 0) return 999999999.9;
    if (percent >= 1) return 0;
    return this.timestepToSigma(f32((1 - percent) * 999));
  }

  /** Model input: x / sqrt(sigma^2 + 1). */
  calculateInput(sigma: number, x: Float32Array): Float32Array {
    const c = Math.sqrt(sigma * sigma + 1);
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i]! / c;
    return out;
  }

  /** x0 prediction from the raw model output (eps or v) and the unscaled input x. */
  calculateDenoised(sigma: number, modelOutput: Float32Array, x: Float32Array): Float32Array {
    const out = new Float32Array(x.length);
    if (this.prediction === 'eps') {
      for (let i = 0; i < x.length; i++) out[i] = x[i]! - sigma * modelOutput[i]!;
    } else {
      const s2 = sigma * sigma + 1;
      const cx = 1 / s2;
      const cv = sigma / Math.sqrt(s2);
      for (let i = 0; i < x.length; i++) out[i] = x[i]! * cx - modelOutput[i]! * cv;
    }
    return out;
  }

  /**
   * Starting x: `noise * sqrt(1 + sigma^2) + latent` when starting from pure noise (max denoise,
   * ComfyUI's txt2img case), else `noise * sigma + latent` (img2img). `latent` is in model space.
   */
  noiseScaling(sigma: number, noise: Float32Array, latent: Float32Array | null, maxDenoise: boolean): Float32Array {
    const s = f32(sigma);
    const c = maxDenoise ? f32(Math.sqrt(f32(1 + f32(s * s)))) : s;
    const out = new Float32Array(noise.length);
    for (let i = 0; i < noise.length; i++) out[i] = f32(noise[i]! * c) + (latent ? latent[i]! : 0);
    return out;
  }

  /** Identity for eps / v models (kept for parity with ComfyUI's flow-model variants). */
  inverseNoiseScaling(_sigma: number, latent: Float32Array): Float32Array {
    return latent;
  }

  /** ComfyUI KSAMPLER.max_denoise: the first sigma is (close to) or above sigma_max. */
  isMaxDenoise(firstSigma: number): boolean {
    const max = this.sigmaMax;
    const closeEnough = Math.abs(max - firstSigma) <= 1e-5 * Math.max(Math.abs(max), Math.abs(firstSigma));
    return closeEnough || firstSigma > max;
  }
}
