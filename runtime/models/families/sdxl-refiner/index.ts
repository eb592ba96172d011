import type { TensorData } from '../../../graph/session.js';
import type { CondBatch } from '../../../sampling/types.js';
import { SafetensorsFile } from '../../../safetensors/reader.js';
import { UnsupportedModelError, detectFamily, familyName } from '../../checkpoint.js';
import { sizeEmbedding, SIZE_EMBED_DIM, LATENT_TO_PIXELS } from '../../sdxl/adm.js';
import { SDXL_DEFAULT_HEAD_CHANNELS, SDXL_HEAD_CHANNELS_METADATA, SDXL_VAE_SCALE_FACTOR } from '../../sdxl/checkpoint.js';
import { inferUnetConfig, type UnetConfigWithFile } from '../../unet/config.js';
import { ModelKeyError, WeightSet } from '../../weights.js';

/**
 * The SDXL refiner (sd_xl_refiner_1.0 layout): one text encoder, OpenCLIP bigG, at `conditioner.embedders.0.model`,
 * and a UNet whose y is [pooled | 5 size/score embeddings] and whose cross-attention takes bigG alone.
 */
export const REFINER_PREFIXES = {
  unet: 'model.diffusion_model.',
  vae: 'first_stage_model.',
  clipG: 'conditioner.embedders.0.model.',
} as const;

/** y order of the refiner's embedded values (model_base.SDXLRefiner.encode_adm). */
export const REFINER_ADM_IDS = ['height', 'width', 'cropH', 'cropW', 'aestheticScore'] as const;

export interface RefinerAdmValues {
  width: number;
  height: number;
  cropW: number;
  cropH: number;
  aestheticScore: number;
}

/** How a conditioning is used: the refiner's aesthetic-score default depends on it. */
export type PromptRole = 'positive' | 'negative';

/** ComfyUI's defaults: the aesthetic score a conditioning without one gets. */
export const REFINER_DEFAULT_ASCORE: Record<PromptRole, number> = { positive: 6.0, negative: 2.5 };

/**
 * encode_adm's fallbacks: width/height from the latent (×8, as ComfyUI hard-codes), crop 0, aesthetic score
 * by role. CLIPTextEncodeSDXLRefiner sets width, height and aesthetic_score; crops are never set.
 */
export function resolveRefinerAdm(given: Partial<RefinerAdmValues> | undefined, role: PromptRole, latentShape?: readonly number[]): RefinerAdmValues {
  const g = given ?? {};
  let { width, height } = g;
  if (width === undefined || height === undefined) {
    if (!latentShape || latentShape.length < 4) throw new Error('SDXL refiner y: width/height not given and no latent shape to derive them from');
    width ??= latentShape[3]! * LATENT_TO_PIXELS;
    height ??= latentShape[2]! * LATENT_TO_PIXELS;
  }
  const out: RefinerAdmValues = { width, height, cropW: g.cropW ?? 0, cropH: g.cropH ?? 0, aestheticScore: g.aestheticScore ?? REFINER_DEFAULT_ASCORE[role] };
  for (const [k, v] of Object.entries(out)) if (!Number.isFinite(v)) throw new Error(`SDXL refiner y: ${k} = ${v} is not a number`);
  return out;
}

export function refinerAdmIds(v: RefinerAdmValues): number[] {
  return REFINER_ADM_IDS.map((k) => v[k]);
}

/** The 5·256 embedded part of the refiner's y. */
export function refinerTimeIdsEmbedding(v: RefinerAdmValues): Float32Array {
  const out = new Float32Array(REFINER_ADM_IDS.length * SIZE_EMBED_DIM);
  refinerAdmIds(v).forEach((x, i) => out.set(sizeEmbedding(x), i * SIZE_EMBED_DIM));
  return out;
}

/** y [rows, P + 1280] for pooled rows [rows, P]. */
export function refinerAdm(pooled: Float32Array, pooledDim: number, v: RefinerAdmValues, admInChannels?: number): Float32Array {
  if (pooledDim < 1 || pooled.length % pooledDim !== 0) throw new Error(`pooled output of ${pooled.length} values is not a whole number of ${pooledDim}-wide rows`);
  const ids = refinerTimeIdsEmbedding(v);
  const width = pooledDim + ids.length;
  if (admInChannels !== undefined && admInChannels !== width) {
    throw new Error(`SDXL refiner y: pooled width ${pooledDim} + ${ids.length} embedded values = ${width}, the UNet takes ${admInChannels}`);
  }
  const rows = pooled.length / pooledDim;
  const out = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) {
    out.set(pooled.subarray(r * pooledDim, (r + 1) * pooledDim), r * width);
    out.set(ids, r * width + pooledDim);
  }
  return out;
}

export interface RefinerCheckpoint {
  path: string;
  file: SafetensorsFile;
  unet: WeightSet;
  vae: WeightSet;
  clipG: WeightSet;
  unetConfig: UnetConfigWithFile;
  vaeScaleFactor: number;
  pooledDim: number;
}

/** Opens a single-file SDXL refiner; the UNet architecture comes from keys and shapes, the head width on trust. */
export function openRefinerCheckpoint(source: string | SafetensorsFile, opts: { numHeadChannels?: number } = {}): RefinerCheckpoint {
  const file = typeof source === 'string' ? SafetensorsFile.open(source) : source;
  const path = file.path;
  const family = detectFamily(file);
  if (family !== 'sdxl-refiner') throw new UnsupportedModelError(path, family, `this is ${familyName(family)} file, not an SDXL refiner checkpoint`);
  for (const [what, key] of [
    ['UNet', `${REFINER_PREFIXES.unet}input_blocks.0.0.weight`],
    ['UNet label embedding (y input)', `${REFINER_PREFIXES.unet}label_emb.0.0.weight`],
    ['VAE', `${REFINER_PREFIXES.vae}decoder.conv_in.weight`],
    ['OpenCLIP bigG text encoder', `${REFINER_PREFIXES.clipG}ln_final.weight`],
  ] as const) {
    if (!file.has(key)) throw new UnsupportedModelError(path, family, `checkpoint has no ${what} (missing key "${key}")`);
  }
  const unet = new WeightSet(file, REFINER_PREFIXES.unet);
  const clipG = new WeightSet(file, REFINER_PREFIXES.clipG);
  const meta = file.metadata[SDXL_HEAD_CHANNELS_METADATA];
  const numHeadChannels = opts.numHeadChannels ?? (meta !== undefined ? Number(meta) : SDXL_DEFAULT_HEAD_CHANNELS);
  const unetConfig = inferUnetConfig(unet, { numHeadChannels }, file.metadata);
  const pooledDim = clipG.has('text_projection') ? clipG.shape('text_projection')[1]! : clipG.shape('token_embedding.weight')[1]!;
  const adm = pooledDim + REFINER_ADM_IDS.length * SIZE_EMBED_DIM;
  if (unetConfig.admInChannels !== adm) {
    throw new ModelKeyError(path, `${REFINER_PREFIXES.unet}label_emb.0.0.weight`, `takes ${unetConfig.admInChannels} inputs, the refiner's y has ${adm} (pooled ${pooledDim} + 5 x ${SIZE_EMBED_DIM})`);
  }
  return { path, file, unet, vae: new WeightSet(file, REFINER_PREFIXES.vae), clipG, unetConfig, vaeScaleFactor: SDXL_VAE_SCALE_FACTOR, pooledDim };
}

/**
 * y for each model call from one fixed y row per conditioning: the sampler batches [uncond, cond] chunks,
 * each the latent batch; every chunk gets its conditioning's row repeated to the chunk's batch.
 */
export function fixedAdmProvider(rows: { cond: Float32Array; uncond: Float32Array }, admInChannels: number): (cond: CondBatch) => TensorData {
  for (const [k, r] of Object.entries(rows)) if (r.length !== admInChannels) throw new Error(`y for ${k} has ${r.length} values, the UNet takes ${admInChannels}`);
  return (cond) => {
    const chunks = cond.condOrUncond.length;
    const perChunk = cond.contextShape[0] / chunks;
    const out = new Float32Array(cond.contextShape[0] * admInChannels);
    cond.condOrUncond.forEach((kind, i) => {
      for (let b = 0; b < perChunk; b++) out.set(rows[kind], (i * perChunk + b) * admInChannels);
    });
    return { data: out, dims: [cond.contextShape[0], admInChannels] };
  };
}
