import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { unetKeyShapes, type UnetArch } from '../../adapters/arch-tables.js';
import { unetDiffusersModulesToLdm } from '../../adapters/keymap.js';
import { writeSafetensors, type TensorToWrite } from '../../safetensors/writer.js';
import { SDXL_HEAD_CHANNELS_METADATA, SDXL_PREFIXES } from '../sdxl/checkpoint.js';
import { SIZE_EMBED_DIM, SIZE_IDS } from '../sdxl/adm.js';
import { initTensor, randomFor, writeSyntheticCheckpoint } from './generate.js';
import { clipKeyShapes, vaeKeyShapes, type ClipArch, type VaeArch } from './tables.js';

/**
 * The SDXL demo model: SDXL's layout and conditioning (two text encoders, pooled + size ids in y, 3 UNet
 * levels without attention at the first, linear transformer projections) at toy widths, plus a ResAdapter
 * in the released SDXL format. Like the SD1.5 demo it makes no pictures of anything; it lets the SDXL
 * workflows run anywhere without a 7 GB download.
 */

export const DEMO_SDXL_VERSION = '1';
export const DEMO_SDXL_CHECKPOINT = 'resflow-demo-sdxl.safetensors';
export const DEMO_SDXL_RESADAPTER = 'resflow-demo-sdxl-resadapter';
export const DEMO_SDXL_SEED = 20250202;
const SEED = DEMO_SDXL_SEED;
/** Attention head width; not readable from shapes, so it travels in the file's metadata. */
const HEAD_CHANNELS = 32;

export interface OpenClipArch extends ClipArch {
  projection: number;
}

export interface SdxlArch {
  unet: UnetArch;
  vae: VaeArch;
  clipL: ClipArch;
  clipG: OpenClipArch;
}

/**
 * Text towers 64 and 128 wide so their head counts (1 and 2) follow from the 64-wide-head rule without
 * metadata; the vocab is the demo tokenizer's, so every id it produces has an embedding row.
 */
export function demoSdxlArch(vocabSize: number): SdxlArch {
  const clipL: ClipArch = { hidden: 64, layers: 2, intermediate: 256, vocab: vocabSize, positions: 77 };
  const clipG: OpenClipArch = { hidden: 128, layers: 3, intermediate: 512, vocab: vocabSize, positions: 77, projection: 128 };
  return {
    unet: {
      inChannels: 4,
      outChannels: 4,
      modelChannels: 32,
      channelMult: [1, 2, 2],
      numResBlocks: [1, 1, 1],
      transformerDepth: [0, 1, 1],
      transformerDepthOutput: [0, 0, 1, 1, 1, 1],
      transformerDepthMiddle: 1,
      contextDim: clipL.hidden + clipG.hidden,
      useLinearInTransformer: true,
      admInChannels: clipG.projection + SIZE_IDS.length * SIZE_EMBED_DIM,
    },
    // Four levels: the 8x downscale of SDXL's VAE.
    vae: { ch: 32, chMult: [1, 1, 2, 2], numResBlocks: 1, zChannels: 4 },
    clipL,
    clipG,
  };
}

/** OpenCLIP text tower keys (SDXL's bigG names); logit_scale is left out as nothing reads it. */
export function openClipKeyShapes(a: OpenClipArch, prefix: string = SDXL_PREFIXES.clipG): Map<string, number[]> {
  const t = new Map<string, number[]>();
  const p = (k: string) => prefix + k;
  t.set(p('token_embedding.weight'), [a.vocab, a.hidden]);
  t.set(p('positional_embedding'), [a.positions, a.hidden]);
  for (let l = 0; l < a.layers; l++) {
    const b = `transformer.resblocks.${l}.`;
    for (const n of ['ln_1', 'ln_2']) {
      t.set(p(`${b}${n}.weight`), [a.hidden]);
      t.set(p(`${b}${n}.bias`), [a.hidden]);
    }
    t.set(p(`${b}attn.in_proj_weight`), [3 * a.hidden, a.hidden]);
    t.set(p(`${b}attn.in_proj_bias`), [3 * a.hidden]);
    t.set(p(`${b}attn.out_proj.weight`), [a.hidden, a.hidden]);
    t.set(p(`${b}attn.out_proj.bias`), [a.hidden]);
    t.set(p(`${b}mlp.c_fc.weight`), [a.intermediate, a.hidden]);
    t.set(p(`${b}mlp.c_fc.bias`), [a.intermediate]);
    t.set(p(`${b}mlp.c_proj.weight`), [a.hidden, a.intermediate]);
    t.set(p(`${b}mlp.c_proj.bias`), [a.hidden]);
  }
  t.set(p('ln_final.weight'), [a.hidden]);
  t.set(p('ln_final.bias'), [a.hidden]);
  t.set(p('text_projection'), [a.hidden, a.projection]);
  return t;
}

/** The whole single-file SDXL table, in sd_xl_base_1.0's key layout. */
export function sdxlCheckpointKeyShapes(a: SdxlArch): Map<string, number[]> {
  return new Map([
    ...unetKeyShapes(a.unet, SDXL_PREFIXES.unet),
    ...vaeKeyShapes(a.vae, SDXL_PREFIXES.vae),
    ...clipKeyShapes(a.clipL, SDXL_PREFIXES.clipL),
    ...openClipKeyShapes(a.clipG),
  ]);
}

export interface ResAdapterWriteOptions {
  seed: number;
  rank?: number;
  /** The model's own norm values, which the replacements perturb; random around 1/0 when not given. */
  baseNorm?: (key: string, shape: number[]) => Float32Array;
  metadata?: Record<string, string>;
}

/**
 * A ResAdapter in the released two-file format for any UNet arch: a kohya conv LoRA (F16, 0-d alpha) on
 * every down/upsampler conv and a perturbed copy of every resnet GroupNorm under diffusers names (F32).
 * Also used by tests to make adapters for a family other than the model's.
 */
export function writeResAdapterFor(dir: string, arch: UnetArch, opts: ResAdapterWriteOptions): void {
  const table = unetKeyShapes(arch);
  const rank = opts.rank ?? 4;
  const seed = opts.seed;
  const lora: Record<string, TensorToWrite> = {};
  const norms: Record<string, TensorToWrite> = {};
  for (const [diffusers, ldm] of unetDiffusersModulesToLdm(arch)) {
    const shape = table.get(`model.diffusion_model.${ldm}.weight`);
    if (!shape) continue;
    if (/(downsamplers|upsamplers)\.0\.conv$/.test(diffusers)) {
      const kohya = `lora_unet_${diffusers.replace(/\./g, '_')}`;
      const [out, inCh, kh, kw] = shape as [number, number, number, number];
      const fan = inCh * kh * kw;
      lora[`${kohya}.lora_down.weight`] = { dtype: 'F16', shape: [rank, inCh, kh, kw], data: randomFor(`${kohya}.down`, seed).fillNormal(new Float32Array(rank * fan), 0, 0.5 / Math.sqrt(fan)) };
      lora[`${kohya}.lora_up.weight`] = { dtype: 'F16', shape: [out, rank, 1, 1], data: randomFor(`${kohya}.up`, seed).fillNormal(new Float32Array(out * rank), 0, 0.5 / Math.sqrt(rank)) };
      lora[`${kohya}.alpha`] = { dtype: 'F16', shape: [], data: [rank / 2] };
    } else if (/resnets\.\d+\.norm[12]$/.test(diffusers)) {
      for (const part of ['weight', 'bias'] as const) {
        const key = `model.diffusion_model.${ldm}.${part}`;
        const keyShape = table.get(key)!;
        const base = opts.baseNorm?.(key, keyShape) ?? initTensor(key, keyShape, seed);
        const rng = randomFor(`${diffusers}.${part}`, seed);
        norms[`${diffusers}.${part}`] = { dtype: 'F32', shape: [base.length], data: base.map((v) => v * (1 + 0.15 * rng.normal()) + 0.02 * rng.normal()) };
      }
    }
  }
  mkdirSync(dir, { recursive: true });
  const meta = { format: 'pt', ...opts.metadata };
  writeSafetensors(join(dir, 'pytorch_lora_weights.safetensors'), lora, meta);
  writeSafetensors(join(dir, 'diffusion_pytorch_model.safetensors'), norms, meta);
}

export interface DemoSdxlPaths {
  checkpoint: string;
  resadapter: string;
}

export function demoSdxlPaths(modelsDir: string): DemoSdxlPaths {
  return { checkpoint: join(modelsDir, 'checkpoints', DEMO_SDXL_CHECKPOINT), resadapter: join(modelsDir, 'resadapters', DEMO_SDXL_RESADAPTER) };
}

/** The tokenizer the demo checkpoint names; the SD1.5 demo writes it (its folder under models/tokenizers). */
export interface DemoTokenizerRef {
  name: string;
  vocabSize: number;
}

/**
 * Writes the SDXL demo checkpoint and its ResAdapter under `modelsDir` unless this version is there.
 * Deterministic; the checkpoint is written under a temporary name and renamed, so a reader never sees half.
 */
export function ensureDemoSdxl(modelsDir: string, tokenizer: DemoTokenizerRef): DemoSdxlPaths {
  const p = demoSdxlPaths(modelsDir);
  const marker = join(modelsDir, '.resflow-demo-sdxl-version');
  const version = `${DEMO_SDXL_VERSION}/${tokenizer.name}/${tokenizer.vocabSize}`;
  if (existsSync(marker) && readFileSync(marker, 'utf8') === version && existsSync(p.checkpoint)) return p;
  mkdirSync(join(modelsDir, 'checkpoints'), { recursive: true });
  const arch = demoSdxlArch(tokenizer.vocabSize);
  const meta = { 'resflow.demo': `sdxl-${DEMO_SDXL_VERSION}` };
  const tmp = `${p.checkpoint}.tmp-${process.pid}`;
  writeSyntheticCheckpoint(tmp, sdxlCheckpointKeyShapes(arch), {
    seed: SEED,
    // F16 like the released SDXL files; it also halves the demo's size.
    dtype: 'F16',
    metadata: { [SDXL_HEAD_CHANNELS_METADATA]: String(HEAD_CHANNELS), 'resflow.tokenizer': tokenizer.name, ...meta },
  });
  renameSync(tmp, p.checkpoint);
  // Same seed as the checkpoint, so the replacement norms are perturbations of the model's own.
  writeResAdapterFor(p.resadapter, arch.unet, { seed: SEED, metadata: meta });
  const tmpMarker = `${marker}.tmp-${process.pid}`;
  writeFileSync(tmpMarker, version);
  renameSync(tmpMarker, marker);
  return p;
}
