/**
 * Masked sampling and inpainting-model inputs, as ComfyUI's KSamplerX0Inpaint and BaseModel.concat_cond:
 * outside the noise mask x is held on the input latent's noising path and denoised is the input latent;
 * 9-channel inpainting UNets get [mask, masked-image latent] as extra input channels.
 */
import { resizeNCHW } from '../image/resize.js';
import { commonUpscale } from '../image/upscale.js';
import { pyRound } from './cond-entries.js';
import { repeatToBatch } from './cond-tensors.js';
import { processLatentIn, SD15_LATENT_FORMAT, type LatentFormat } from './model-sampling.js';
import { SamplingValidationError, type Conditioning, type Denoiser, type Shape4, type StepInfo } from './types.js';

/** A LATENT's noise_mask: [B, 1, H, W], [B, H, W] or [H, W], any resolution. */
export interface NoiseMask {
  data: Float32Array;
  shape: readonly number[];
}

function asPlanes(mask: NoiseMask, what: string): { data: Float32Array; shape: Shape4 } {
  const s = mask.shape;
  const h = s[s.length - 2];
  const w = s[s.length - 1];
  if (s.length < 2 || !h || !w || mask.data.length % (h * w) !== 0) throw new SamplingValidationError(`${what} has an invalid shape [${s.join(', ')}]`);
  return { data: mask.data, shape: [mask.data.length / (h * w), 1, h, w] };
}

/** comfy.utils.reshape_mask: bilinear to the latent size, repeated over channels and to the batch. */
export function prepareDenoiseMask(mask: NoiseMask, shape: Shape4): Float32Array {
  const [B, C, H, W] = shape;
  const m = asPlanes(mask, 'noise mask');
  const sized = resizeNCHW(m.data, m.shape, H, W, 'bilinear', false).data;
  const mb = m.shape[0];
  const plane = H * W;
  const perItem = new Float32Array(mb * C * plane);
  for (let b = 0; b < mb; b++) for (let c = 0; c < C; c++) perItem.set(sized.subarray(b * plane, (b + 1) * plane), (b * C + c) * plane);
  return repeatToBatch(perItem, mb, B);
}

/**
 * KSamplerX0Inpaint: before each model call `x = x*m + (latent + noise*sigma)*(1-m)`, after it
 * `denoised = denoised*m + latent*(1-m)`. `latent` is in model space, `noise` the run's initial noise.
 * A denoiser that also hands out its negative prediction (`withUncond`) keeps it, with only the guided
 * prediction masked (ComfyUI masks the model wrapper's output, not what post-CFG hooks saw).
 */
export function maskedDenoiser<D extends Denoiser>(inner: D, mask: Float32Array, latent: Float32Array, noise: Float32Array): D {
  const before = (x: Float32Array, sigma: number) => {
    const xm = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const m = mask[i]!;
      xm[i] = x[i]! * m + Math.fround(Math.fround(noise[i]! * sigma) + latent[i]!) * Math.fround(1 - m);
    }
    return xm;
  };
  const after = (out: Float32Array) => {
    const res = new Float32Array(out.length);
    for (let i = 0; i < out.length; i++) {
      const m = mask[i]!;
      res[i] = Math.fround(out[i]! * m) + Math.fround(latent[i]! * Math.fround(1 - m));
    }
    return res;
  };
  const masked: Denoiser = async (x, sigma, step) => after(await inner(before(x, sigma), sigma, step));
  type WithUncond = (x: Float32Array, sigma: number, step: StepInfo) => Promise<{ denoised: Float32Array; uncond: Float32Array }>;
  const withUncond = (inner as { withUncond?: WithUncond }).withUncond;
  if (withUncond) {
    const wrapped: WithUncond = async (x, sigma, step) => {
      const r = await withUncond(before(x, sigma), sigma, step);
      return { ...r, denoised: after(r.denoised) };
    };
    Object.assign(masked, { withUncond: wrapped });
  }
  return masked as D;
}

/** latent_format.blank_inpaint_image_like for SD1.x / SDXL latents: "zero" pixels in latent space. */
const BLANK_LATENT = [0.8223, -0.6876, 0.6364, 0.138];

export interface ConcatInputs {
  /** Extra channels the model takes (5 for SD inpainting UNets: mask + masked image). */
  channels: number;
  shape: Shape4;
  latentFormat: LatentFormat;
  /** The sampler's latent in model space. */
  latent: Float32Array;
  /** The prepared denoise mask [B, C, H, W], if the latent has one. */
  denoiseMask?: Float32Array;
}

/** BaseModel.concat_cond for the ("mask", "masked_image") models (and IP2P's image-only channels): the channels one entry feeds the UNet. */
export function inpaintConcat(inputs: ConcatInputs): (entry: Conditioning) => Float32Array {
  const [B, C, H, W] = inputs.shape;
  if (inputs.channels === C) return pixToPixConcat(inputs);
  if (inputs.channels !== C + 1) {
    throw new SamplingValidationError(`this model takes ${inputs.channels} extra input channels; only inpainting models with ${C + 1} (mask + masked image) are supported`);
  }
  const plane = H * W;
  return (entry) => {
    let image: Float32Array;
    if (entry.concatLatent) {
      const l = entry.concatLatent;
      const scaled = processLatentIn(inputs.latentFormat, l.data);
      const sized = l.shape[1] === C && l.shape[2] === H && l.shape[3] === W ? scaled : commonUpscale({ data: scaled, shape: l.shape }, W, H, 'bilinear', 'center').data;
      image = repeatToBatch(sized, l.shape[0], B);
    } else image = inputs.latent;
    let mask: Float32Array | undefined;
    if (entry.concatMask || inputs.denoiseMask) {
      let m: { data: Float32Array; shape: Shape4 };
      if (entry.concatMask) m = asPlanes(entry.concatMask, 'concat mask');
      else {
        // denoise_mask[:, :1]
        const first = new Float32Array(B * plane);
        for (let b = 0; b < B; b++) first.set(inputs.denoiseMask!.subarray(b * C * plane, b * C * plane + plane), b * plane);
        m = { data: first, shape: [B, 1, H, W] };
      }
      const sized = m.shape[2] === H && m.shape[3] === W ? m.data : commonUpscale(m, W, H, 'bilinear', 'center').data;
      mask = repeatToBatch(Float32Array.from(sized, pyRound), m.shape[0], B);
    }
    const out = new Float32Array(B * (C + 1) * plane);
    for (let b = 0; b < B; b++) {
      const base = b * (C + 1) * plane;
      if (mask) out.set(mask.subarray(b * plane, (b + 1) * plane), base);
      else out.fill(1, base, base + plane);
      if (mask) out.set(image.subarray(b * C * plane, (b + 1) * C * plane), base + plane);
      else for (let c = 0; c < C; c++) out.fill(BLANK_LATENT[c] ?? 0, base + (c + 1) * plane, base + (c + 2) * plane);
    }
    return out;
  };
}

/**
 * InstructPix2Pix models (C extra channels): the conditioning's image latent (zeros without one), resized to
 * the latent if needed; SD1.x IP2P takes it unscaled, other families through process_latent_in.
 */
function pixToPixConcat(inputs: ConcatInputs): (entry: Conditioning) => Float32Array {
  const [B, C, H, W] = inputs.shape;
  return (entry) => {
    const l = entry.concatLatent;
    if (!l) return new Float32Array(B * C * H * W);
    const sized = l.shape[1] === C && l.shape[2] === H && l.shape[3] === W ? l.data : commonUpscale({ data: l.data, shape: l.shape }, W, H, 'bilinear', 'center').data;
    // SD1.x's latent space (by its scale and shift: a checkpoint may bring its own preview colours).
    const sd1Space = inputs.latentFormat.scaleFactor === SD15_LATENT_FORMAT.scaleFactor && !inputs.latentFormat.shiftFactor;
    const scaled = sd1Space ? sized : processLatentIn(inputs.latentFormat, sized);
    return repeatToBatch(scaled, l.shape[0], B);
  };
}
