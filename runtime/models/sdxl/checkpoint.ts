import { SafetensorsFile } from '../../safetensors/reader.js';
import { UnsupportedModelError, detectFamily, familyName } from '../checkpoint.js';
import { inferUnetConfig, type UnetConfigWithFile } from '../unet/config.js';
import { ModelKeyError, WeightSet } from '../weights.js';
import { SIZE_EMBED_DIM, SIZE_IDS } from './adm.js';

/** Key prefixes of the single-file SDXL layout (sd_xl_base_1.0.safetensors). */
export const SDXL_PREFIXES = {
  unet: 'model.diffusion_model.',
  vae: 'first_stage_model.',
  clipL: 'conditioner.embedders.0.transformer.text_model.',
  clipG: 'conditioner.embedders.1.model.',
} as const;

/** SDXL's latent scale (process_latent_in/out); the VAE itself is SD1's architecture. */
export const SDXL_VAE_SCALE_FACTOR = 0.13025;

/** Metadata key a file may carry when its attention heads are not SDXL's 64 wide (test models). */
export const SDXL_HEAD_CHANNELS_METADATA = 'resflow.unet.num_head_channels';

/** Every released SDXL UNet uses 64-wide heads; shapes cannot tell, so this is the default. */
export const SDXL_DEFAULT_HEAD_CHANNELS = 64;

export interface SdxlCheckpointOptions {
  /** Head width of the UNet's attention; else the file's metadata, else 64. */
  numHeadChannels?: number;
}

/** The parts of a single-file SDXL checkpoint, each a view over the one lazily read file. */
export interface SdxlCheckpoint {
  path: string;
  file: SafetensorsFile;
  unet: WeightSet;
  vae: WeightSet;
  clipL: WeightSet;
  clipG: WeightSet;
  unetConfig: UnetConfigWithFile;
  vaeScaleFactor: number;
  /** Width of bigG's projected pooled output, the head of the y vector. */
  pooledDim: number;
}

function headChannels(file: SafetensorsFile, opts: SdxlCheckpointOptions): number {
  if (opts.numHeadChannels !== undefined) return opts.numHeadChannels;
  const meta = file.metadata[SDXL_HEAD_CHANNELS_METADATA];
  if (meta === undefined) return SDXL_DEFAULT_HEAD_CHANNELS;
  const n = Number(meta);
  if (!Number.isInteger(n) || n < 1) throw new UnsupportedModelError(file.path, 'sdxl', `metadata ${SDXL_HEAD_CHANNELS_METADATA} = "${meta}" is not a positive integer`);
  return n;
}

/**
 * Opens a single-file SDXL base checkpoint. The UNet architecture comes from keys and shapes (any widths,
 * depths, level counts); only the head width is taken on trust. Other families, the refiner included, are
 * refused with a message naming what the file is.
 */
export function openSdxlCheckpoint(source: string | SafetensorsFile, opts: SdxlCheckpointOptions = {}): SdxlCheckpoint {
  const file = typeof source === 'string' ? SafetensorsFile.open(source) : source;
  const path = file.path;
  const family = detectFamily(file);
  if (family !== 'sdxl') {
    const hint = family === 'sd1' ? ' (open it as a Stable Diffusion 1.x checkpoint)' : family === 'sdxl-refiner' ? ' (open it with openRefinerCheckpoint; CheckpointLoaderSimple loads either)' : '';
    throw new UnsupportedModelError(path, family, `this is ${familyName(family)} file, not an SDXL base checkpoint${hint}`);
  }
  for (const [what, key] of [
    ['UNet', `${SDXL_PREFIXES.unet}input_blocks.0.0.weight`],
    ['UNet label embedding (y input)', `${SDXL_PREFIXES.unet}label_emb.0.0.weight`],
    ['VAE', `${SDXL_PREFIXES.vae}decoder.conv_in.weight`],
    ['CLIP-L text encoder', `${SDXL_PREFIXES.clipL}final_layer_norm.weight`],
    ['OpenCLIP bigG text encoder', `${SDXL_PREFIXES.clipG}ln_final.weight`],
  ] as const) {
    if (!file.has(key)) throw new UnsupportedModelError(path, family, `checkpoint has no ${what} (missing key "${key}")`);
  }
  const unet = new WeightSet(file, SDXL_PREFIXES.unet);
  const clipG = new WeightSet(file, SDXL_PREFIXES.clipG);
  const numHeadChannels = headChannels(file, opts);
  const unetConfig = inferUnetConfig(unet, { numHeadChannels }, file.metadata);
  for (const blk of unetConfig.inputBlocks) {
    if (blk.kind === 'res' && blk.attn && blk.outCh % numHeadChannels !== 0) {
      throw new UnsupportedModelError(path, family, `attention width ${blk.outCh} is not a multiple of the head width ${numHeadChannels}; set ${SDXL_HEAD_CHANNELS_METADATA}`);
    }
  }

  const pooledDim = clipG.has('text_projection') ? clipG.shape('text_projection')[1]! : clipG.shape('token_embedding.weight')[1]!;
  const adm = pooledDim + SIZE_IDS.length * SIZE_EMBED_DIM;
  if (unetConfig.admInChannels !== adm) {
    // y = [pooled | 6 size embeddings]; any other width means a different conditioning scheme.
    throw new ModelKeyError(path, `${SDXL_PREFIXES.unet}label_emb.0.0.weight`, `takes ${unetConfig.admInChannels} inputs, SDXL's y has ${adm} (pooled ${pooledDim} + 6 x ${SIZE_EMBED_DIM})`);
  }
  return {
    path,
    file,
    unet,
    vae: new WeightSet(file, SDXL_PREFIXES.vae),
    clipL: new WeightSet(file, SDXL_PREFIXES.clipL),
    clipG,
    unetConfig,
    vaeScaleFactor: SDXL_VAE_SCALE_FACTOR,
    pooledDim,
  };
}
