/**
 * ComfyUI's ModelSamplingDiscrete + EPS / V_PREDICTION, and the latent format (scale factor, preview
 * factors) that ComfyUI keeps on the model. Schedules are built in float64 and stored float32, exactly
 * where ComfyUI converts, because samplers and the timestep lookup see the float32 values.
 */
import { f32, linspaceF32, linspaceF64 } from './f32.js';
import { SamplingValidationError } from './types.js';

/**
 * What the UNet predicts: eps (noise), v, x0 (the clean latent), lcm (eps with LCM's consistency
 * boundary scaling over a 50-step distilled schedule), edm (Karras' preconditioning, sigma_data 0.5), or
 * img_to_img (x0 from an unscaled input).
 */
export type Prediction = 'eps' | 'v' | 'x0' | 'lcm' | 'edm' | 'img_to_img';

const PREDICTIONS: readonly Prediction[] = ['eps', 'v', 'x0', 'lcm', 'edm', 'img_to_img'];

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
  /** Rescale the schedule to zero terminal SNR (Lin et al. 2024), ComfyUI's zsnr switch. */
  zsnr?: boolean;
  /**
   * ComfyUI's ModelSamplingContinuousEDM: 1000 log-spaced sigmas between these bounds and the
   * continuous timestep 0.25 * log(sigma) instead of the discrete beta schedule.
   */
  continuousEdm?: { sigmaMin: number; sigmaMax: number };
}

/** ComfyUI's rescale_zero_terminal_snr_sigmas, in float64 like the schedule it rescales. */
export function rescaleZeroTerminalSnr(sigmas: Float64Array): Float64Array {
  const n = sigmas.length;
  const sqrtAcp = Array.from(sigmas, (s) => Math.sqrt(1 / (s * s + 1)));
  const first = sqrtAcp[0]!;
  const last = sqrtAcp[n - 1]!;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let a = ((sqrtAcp[i]! - last) * first) / (first - last);
    a *= a;
    if (i === n - 1) a = 4.8973451890853435e-8;
    out[i] = Math.sqrt((1 - a) / a);
  }
  return out;
}

/** LCM distillation keeps every 20th of the 1000 training sigmas (50 steps). */
const DISTILLED_STEPS = 50;

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

  /** LCM's distilled schedule: timestep = index * skip + skip - 1. */
  readonly skipSteps: number;
  /** EDM / sigma_data of the preconditioning (1 except for edm). */
  readonly sigmaData: number;
  private readonly edm: { sigmaMin: number; sigmaMax: number } | null;

  constructor(options: ModelSamplingOptions = {}) {
    const linearStart = options.linearStart ?? 0.00085;
    const linearEnd = options.linearEnd ?? 0.012;
    const n = options.timesteps ?? 1000;
    if (!Number.isInteger(n) || n < 2) throw new SamplingValidationError(`timesteps must be an integer >= 2, got ${n}`);
    this.prediction = options.prediction ?? 'eps';
    if (!PREDICTIONS.includes(this.prediction)) {
      throw new SamplingValidationError(`unknown prediction type "${String(this.prediction)}" (valid: ${PREDICTIONS.join(', ')})`);
    }
    this.latentFormat = options.latentFormat ?? SD15_LATENT_FORMAT;
    this.sigmaData = this.prediction === 'edm' ? 0.5 : 1;
    this.edm = options.continuousEdm ?? null;
    this.skipSteps = 1;

    const roots = linspaceF64(Math.sqrt(linearStart), Math.sqrt(linearEnd), n);
    this.betas = roots.map((r) => r * r);
    this.alphasCumprod = new Float64Array(n);
    let sig64: Float64Array = new Float64Array(n);
    let acp = 1;
    for (let i = 0; i < n; i++) {
      acp *= 1 - this.betas[i]!;
      this.alphasCumprod[i] = acp;
      sig64[i] = Math.sqrt((1 - acp) / acp);
    }
    if (options.zsnr) sig64 = rescaleZeroTerminalSnr(sig64);
    if (this.edm) {
      const { sigmaMin, sigmaMax } = this.edm;
      if (!(sigmaMin > 0 && sigmaMax > sigmaMin)) throw new SamplingValidationError(`EDM sampling needs 0 < sigma_min < sigma_max, got ${sigmaMin}, ${sigmaMax}`);
      const logs = linspaceF32(Math.log(sigmaMin), Math.log(sigmaMax), 1000);
      this.sigmas = Float32Array.from(logs, (l) => f32(Math.exp(l)));
      this.logSigmas = Float32Array.from(this.sigmas, (v) => f32(Math.log(v)));
    } else if (this.prediction === 'lcm') {
      this.skipSteps = Math.floor(n / DISTILLED_STEPS);
      this.sigmas = new Float32Array(DISTILLED_STEPS);
      for (let x = 0; x < DISTILLED_STEPS; x++) this.sigmas[DISTILLED_STEPS - 1 - x] = f32(sig64[n - 1 - x * this.skipSteps]!);
      // set_sigmas on a float32 tensor: the logs are of the float32 values here.
      this.logSigmas = Float32Array.from(this.sigmas, (v) => f32(Math.log(v)));
    } else {
      this.sigmas = Float32Array.from(sig64, (v) => f32(v));
      this.logSigmas = Float32Array.from(sig64, (v) => f32(Math.log(v)));
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
    if (this.edm) return f32(0.25 * f32(Math.log(f32(sigma))));
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
    return best * this.skipSteps + (this.skipSteps - 1);
  }

  /** Sigma at a (fractional) timestep: linear interpolation of log sigma in float32. */
  timestepToSigma(timestep: number): number {
    if (this.edm) return f32(Math.exp(f32(timestep) / 0.25));
    const shifted = this.skipSteps === 1 ? f32(timestep) : f32(f32(f32(timestep) - (this.skipSteps - 1)) / this.skipSteps);
    const t = Math.min(Math.max(shifted, 0), this.sigmas.length - 1);
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
    if (this.edm) {
      const lmin = Math.log(this.edm.sigmaMin);
      return Math.exp((Math.log(this.edm.sigmaMax) - lmin) * (1 - percent) + lmin);
    }
    return this.timestepToSigma(f32((1 - percent) * 999));
  }

  /** Model input: x / sqrt(sigma^2 + 1). */
  calculateInput(sigma: number, x: Float32Array): Float32Array {
    if (this.prediction === 'img_to_img') return Float32Array.from(x);
    const c = Math.sqrt(sigma * sigma + this.sigmaData * this.sigmaData);
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i]! / c;
    return out;
  }

  /** x0 prediction from the raw model output (eps or v) and the unscaled input x. */
  calculateDenoised(sigma: number, modelOutput: Float32Array, x: Float32Array): Float32Array {
    const out = new Float32Array(x.length);
    if (this.prediction === 'eps') {
      for (let i = 0; i < x.length; i++) out[i] = x[i]! - sigma * modelOutput[i]!;
    } else if (this.prediction === 'x0' || this.prediction === 'img_to_img') {
      out.set(modelOutput.subarray(0, x.length));
    } else if (this.prediction === 'lcm') {
      // LCM's boundary condition: blend the eps-derived x0 with the input by the scaled timestep.
      const t = this.sigmaToTimestep(sigma) * 10;
      const cSkip = 0.25 / (t * t + 0.25);
      const cOut = t / Math.sqrt(t * t + 0.25);
      for (let i = 0; i < x.length; i++) out[i] = cOut * (x[i]! - modelOutput[i]! * sigma) + cSkip * x[i]!;
    } else if (this.prediction === 'edm') {
      const sd2 = this.sigmaData * this.sigmaData;
      const cx = sd2 / (sigma * sigma + sd2);
      const co = (sigma * this.sigmaData) / Math.sqrt(sigma * sigma + sd2);
      for (let i = 0; i < x.length; i++) out[i] = x[i]! * cx + modelOutput[i]! * co;
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
