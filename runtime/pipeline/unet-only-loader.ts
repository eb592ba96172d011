// ComfyUI's "Load Diffusion Model" (UNETLoader): a file holding only a UNet, from models/diffusion_models or
// the older models/unet. The keys are LDM names, bare (`input_blocks.*`) or under `model.diffusion_model.`;
// which family the UNet belongs to is read from its shapes, as ComfyUI's model detection does.

import { SafetensorsFile } from '../safetensors/reader.js';
import { WeightSet } from '../models/weights.js';
import { inferUnetConfig } from '../models/unet/config.js';
import { UnetModel } from '../models/unet/model.js';
import { SDXL_DEFAULT_HEAD_CHANNELS, SDXL_HEAD_CHANNELS_METADATA } from '../models/sdxl/checkpoint.js';
import { sdxlModelSampling } from '../models/sdxl/sampling.js';
import { ModelSampling, SD15_LATENT_FORMAT } from '../sampling/model-sampling.js';
import { readSidecar } from './sdxl-loader.js';

export type UnetOnlyFamily = 'sd1' | 'sdxl' | 'sdxl-refiner';

/** The weight_dtype choices of ComfyUI's UNETLoader. */
export const UNET_WEIGHT_DTYPES = ['default', 'fp8_e4m3fn', 'fp8_e4m3fn_fast', 'fp8_e5m2'] as const;

const PREFIXES = ['model.diffusion_model.', ''];

/** The prefix the UNet keys sit under, or an error naming the file when none holds a UNet. */
export function unetPrefix(file: Pick<SafetensorsFile, 'has' | 'keys' | 'path'>): string {
  const p = PREFIXES.find((x) => file.has(`${x}input_blocks.0.0.weight`));
  if (p !== undefined) return p;
  const diffusers = file.has('conv_in.weight') || file.has('unet.conv_in.weight');
  throw new Error(
    `${file.path}: not a diffusion model in LDM layout (no "input_blocks.0.0.weight", bare or under "model.diffusion_model.")` +
      (diffusers ? '; diffusers-layout UNets are not supported, convert the file to the single-file layout' : ''),
  );
}

/**
 * The family from the UNet alone: a label embedding (y input) makes it SDXL; its width minus five 256-wide
 * size embeddings equal to the cross-attention width is the refiner (y = bigG pooled + 5 ids, context = bigG),
 * else the base (y = pooled + 6 ids, context = CLIP-L + bigG). Without y, a 1024-wide context is SD2.x, which
 * ResFlow does not run; anything else is SD1.x.
 */
export function detectUnetFamily(w: WeightSet): UnetOnlyFamily {
  const toK = w.names().find((k) => /\.attn2\.to_k\.weight$/.test(k));
  const context = toK ? w.shape(toK)[1]! : undefined;
  if (w.has('label_emb.0.0.weight')) {
    const adm = w.shape('label_emb.0.0.weight')[1]!;
    return context !== undefined && adm - 5 * 256 === context ? 'sdxl-refiner' : 'sdxl';
  }
  if (context === 1024) throw new Error(`${w.file.path}: an SD2.x UNet (1024-wide context); SD2.x diffusion models are not supported`);
  return 'sd1';
}

export interface UnetOnlyModel {
  family: UnetOnlyFamily;
  unet: UnetModel;
  sampling: ModelSampling;
}

/** Loads a UNet-only file; SDXL head widths come from the sidecar or metadata, as for SDXL checkpoints. */
export function loadUnetOnly(path: string): UnetOnlyModel {
  const file = SafetensorsFile.open(path);
  const weights = new WeightSet(file, unetPrefix(file));
  const family = detectUnetFamily(weights);
  if (family === 'sd1') {
    const unet = new UnetModel(weights, inferUnetConfig(weights, {}, file.metadata));
    return { family, unet, sampling: new ModelSampling({ latentFormat: SD15_LATENT_FORMAT }) };
  }
  const meta = file.metadata[SDXL_HEAD_CHANNELS_METADATA];
  const numHeadChannels = readSidecar(path).numHeadChannels ?? (meta === undefined ? SDXL_DEFAULT_HEAD_CHANNELS : Number(meta));
  if (!Number.isInteger(numHeadChannels) || numHeadChannels < 1) throw new Error(`${path}: metadata ${SDXL_HEAD_CHANNELS_METADATA} = "${meta}" is not a positive integer`);
  const unet = new UnetModel(weights, inferUnetConfig(weights, { numHeadChannels }, file.metadata));
  return { family, unet, sampling: sdxlModelSampling() };
}
