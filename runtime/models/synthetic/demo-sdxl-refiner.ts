import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { unetKeyShapes, type UnetArch } from '../../adapters/arch-tables.js';
import { REFINER_ADM_IDS, REFINER_PREFIXES } from '../families/sdxl-refiner/index.js';
import { SIZE_EMBED_DIM } from '../sdxl/adm.js';
import { SDXL_HEAD_CHANNELS_METADATA, SDXL_PREFIXES } from '../sdxl/checkpoint.js';
import { DEMO_SDXL_SEED, demoSdxlArch, openClipKeyShapes, type DemoTokenizerRef } from './demo-sdxl.js';
import { initTensor, writeSyntheticCheckpoint } from './generate.js';
import { vaeKeyShapes } from './tables.js';

/**
 * The SDXL refiner demo model, for the base → refiner workflow: sd_xl_refiner_1.0's layout (bigG alone at
 * `conditioner.embedders.0.model`, 4 UNet levels, attention on the middle two, y = pooled + 5 embedded
 * values) at toy widths. Like the real pair, its VAE and bigG are the SDXL demo's own tensors, so the
 * refiner decodes the base's latents with the same VAE; only the UNet is its own.
 */

export const DEMO_SDXL_REFINER_VERSION = '1';
export const DEMO_SDXL_REFINER_CHECKPOINT = 'resflow-demo-sdxl-refiner.safetensors';
const UNET_SEED = 20250303;
const HEAD_CHANNELS = 32;

export function demoSdxlRefinerUnet(vocabSize: number): UnetArch {
  const { clipG } = demoSdxlArch(vocabSize);
  return {
    inChannels: 4,
    outChannels: 4,
    modelChannels: 32,
    // The last level is wider than the GroupNorm's 32 groups, so y's per-channel shift is not normalised away.
    channelMult: [1, 1, 1, 2],
    numResBlocks: [1, 1, 1, 1],
    transformerDepth: [0, 1, 1, 0],
    transformerDepthOutput: [0, 0, 1, 1, 1, 1, 0, 0],
    transformerDepthMiddle: 1,
    contextDim: clipG.hidden,
    useLinearInTransformer: true,
    admInChannels: clipG.projection + REFINER_ADM_IDS.length * SIZE_EMBED_DIM,
  };
}

export function demoSdxlRefinerPath(modelsDir: string): string {
  return join(modelsDir, 'checkpoints', DEMO_SDXL_REFINER_CHECKPOINT);
}

/** Writes the refiner demo checkpoint under `modelsDir` unless this version is there; atomic and deterministic. */
export function ensureDemoSdxlRefiner(modelsDir: string, tokenizer: DemoTokenizerRef): string {
  const path = demoSdxlRefinerPath(modelsDir);
  const marker = join(modelsDir, '.resflow-demo-sdxl-refiner-version');
  const version = `${DEMO_SDXL_REFINER_VERSION}/${tokenizer.name}/${tokenizer.vocabSize}`;
  if (existsSync(marker) && readFileSync(marker, 'utf8') === version && existsSync(path)) return path;
  mkdirSync(join(modelsDir, 'checkpoints'), { recursive: true });
  const base = demoSdxlArch(tokenizer.vocabSize);
  const table = new Map([
    ...unetKeyShapes(demoSdxlRefinerUnet(tokenizer.vocabSize), REFINER_PREFIXES.unet),
    ...vaeKeyShapes(base.vae, REFINER_PREFIXES.vae),
    ...openClipKeyShapes(base.clipG, REFINER_PREFIXES.clipG),
  ]);
  // The base's tensor for the same part: the base generator names its bigG `conditioner.embedders.1.model.*`.
  const shared = (name: string, shape: number[]) => {
    if (name.startsWith(REFINER_PREFIXES.vae)) return initTensor(name, shape, DEMO_SDXL_SEED);
    if (name.startsWith(REFINER_PREFIXES.clipG)) return initTensor(SDXL_PREFIXES.clipG + name.slice(REFINER_PREFIXES.clipG.length), shape, DEMO_SDXL_SEED);
    return undefined;
  };
  const tmp = `${path}.tmp-${process.pid}`;
  writeSyntheticCheckpoint(tmp, table, {
    seed: UNET_SEED,
    dtype: 'F16',
    values: shared,
    metadata: { [SDXL_HEAD_CHANNELS_METADATA]: String(HEAD_CHANNELS), 'resflow.tokenizer': tokenizer.name, 'resflow.demo': `sdxl-refiner-${DEMO_SDXL_REFINER_VERSION}` },
  });
  renameSync(tmp, path);
  const tmpMarker = `${marker}.tmp-${process.pid}`;
  writeFileSync(tmpMarker, version);
  renameSync(tmpMarker, marker);
  return path;
}
