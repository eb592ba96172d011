import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { UnetArch } from '../../adapters/arch-tables.js';
import { unetDiffusersModulesToLdm } from '../../adapters/keymap.js';
import { writeSafetensors, type TensorToWrite } from '../../safetensors/writer.js';
import { initTensor, randomFor, writeSyntheticCheckpoint } from './generate.js';
import { sd1CheckpointKeyShapes, type Sd1Arch } from './tables.js';
import { writeDemoControlNet, writeDemoInputImage, writeDemoLcmLora } from './demo-extras.js';
import { demoSdxlPaths, ensureDemoSdxl, type DemoSdxlPaths } from './demo-sdxl.js';
import { ensureDemoSdxlRefiner } from './demo-sdxl-refiner.js';

/**
 * The embedded demonstration model: an SD1.5-architecture checkpoint with tiny widths and random weights,
 * its own byte-level tokenizer vocab and a matching ResAdapter. It exists so `npm run demo` and the tests
 * exercise the full pipeline with no download; its images are not meant to look like anything.
 */

export const DEMO_VERSION = '2';
export const DEMO_CHECKPOINT = 'resflow-demo-sd15.safetensors';
export const DEMO_TOKENIZER = 'resflow-demo';
export const DEMO_RESADAPTER = 'resflow-demo-resadapter';
export const DEMO_CONTROLNET = 'resflow-demo-controlnet.safetensors';
export const DEMO_LCM_LORA = 'resflow-demo-lcm-lora.safetensors';
export const DEMO_INPUT_IMAGE = 'resflow-demo-input.png';
const SEED = 20250101;

const BYTE_TOKENS = (() => {
  const out: string[] = [];
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    const visible = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out.push(String.fromCharCode(visible ? b : 0x100 + shifted++));
  }
  return out;
})();

/** Byte-level vocab in CLIP's order: 256 bytes, the same with `</w>`, then the two special tokens. */
export function demoVocab(): Record<string, number> {
  const vocab: Record<string, number> = {};
  for (const t of BYTE_TOKENS) vocab[t] = Object.keys(vocab).length;
  for (const t of BYTE_TOKENS) vocab[`${t}</w>`] = Object.keys(vocab).length;
  vocab['<|startoftext|>'] = Object.keys(vocab).length;
  vocab['<|endoftext|>'] = Object.keys(vocab).length;
  return vocab;
}

export const DEMO_UNET: UnetArch = {
  inChannels: 4,
  outChannels: 4,
  modelChannels: 32,
  channelMult: [1, 2],
  numResBlocks: [1, 1],
  // Attention only at the half-resolution level (as SDXL does at its first level): keeps 1024² renders cheap.
  transformerDepth: [0, 1],
  transformerDepthOutput: [0, 0, 1, 1],
  transformerDepthMiddle: 1,
  contextDim: 64,
  useLinearInTransformer: false,
  admInChannels: null,
};

export const DEMO_ARCH: Sd1Arch = {
  unet: DEMO_UNET,
  // Four levels so the VAE scales by 8 like SD's: a 256² image is a 32² latent.
  vae: { ch: 32, chMult: [1, 1, 2, 2], numResBlocks: 1, zChannels: 4 },
  clip: { hidden: 64, layers: 2, intermediate: 128, vocab: 514, positions: 77 },
};

export interface DemoPaths {
  checkpoint: string;
  tokenizer: string;
  resadapter: string;
  controlnet: string;
  lcmLora: string;
  sdxl: DemoSdxlPaths;
}

export function demoPaths(modelsDir: string): DemoPaths {
  return {
    checkpoint: join(modelsDir, 'checkpoints', DEMO_CHECKPOINT),
    tokenizer: join(modelsDir, 'tokenizers', DEMO_TOKENIZER),
    resadapter: join(modelsDir, 'resadapters', DEMO_RESADAPTER),
    controlnet: join(modelsDir, 'controlnet', DEMO_CONTROLNET),
    lcmLora: join(modelsDir, 'loras', DEMO_LCM_LORA),
    sdxl: demoSdxlPaths(modelsDir),
  };
}

/** Writes the demo model files under `modelsDir` unless this version is already there. Deterministic. */
export function ensureDemoModels(modelsDir: string): DemoPaths {
  const p = demoPaths(modelsDir);
  const marker = join(modelsDir, '.resflow-demo-version');
  if (!(existsSync(marker) && readFileSync(marker, 'utf8') === DEMO_VERSION && existsSync(p.checkpoint))) writeDemoSd15(modelsDir, p, marker);
  // After the SD1.5 part: the SDXL demo uses its tokenizer. Versioned on its own, so data folders made
  // before it existed get it too.
  ensureDemoSdxl(modelsDir, { name: DEMO_TOKENIZER, vocabSize: Object.keys(demoVocab()).length });
  ensureDemoSdxlRefiner(modelsDir, { name: DEMO_TOKENIZER, vocabSize: Object.keys(demoVocab()).length });
  return p;
}

function writeDemoSd15(modelsDir: string, p: DemoPaths, marker: string): void {
  for (const d of [join(modelsDir, 'checkpoints'), p.tokenizer, p.resadapter]) mkdirSync(d, { recursive: true });

  writeAtomic(join(p.tokenizer, 'vocab.json'), JSON.stringify(demoVocab()));
  writeAtomic(join(p.tokenizer, 'merges.txt'), '#version: 0.2\n');
  writeSyntheticCheckpoint(p.checkpoint, sd1CheckpointKeyShapes(DEMO_ARCH), {
    seed: SEED,
    metadata: { 'resflow.unet.num_heads': '2', 'resflow.tokenizer': DEMO_TOKENIZER, 'resflow.demo': DEMO_VERSION },
  });
  writeDemoResAdapter(p.resadapter, DEMO_ARCH);
  const meta = { 'resflow.unet.num_heads': '2', 'resflow.demo': DEMO_VERSION };
  writeDemoControlNet(p.controlnet, DEMO_UNET, SEED, meta);
  writeDemoLcmLora(p.lcmLora, DEMO_UNET, SEED, meta);
  writeAtomic(marker, DEMO_VERSION);
}

/** The demo's input image (img2img and ControlNet workflows) in the input folder, unless already there. */
export async function ensureDemoInput(inputDir: string): Promise<string> {
  const path = join(inputDir, DEMO_INPUT_IMAGE);
  if (!existsSync(path)) await writeDemoInputImage(path);
  return path;
}

function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/**
 * A ResAdapter in the released two-file format for the demo UNet: a rank-4 kohya conv LoRA on every
 * down/upsampler conv (alpha 2) and a perturbed copy of every resnet GroupNorm under diffusers names.
 */
function writeDemoResAdapter(dir: string, arch: Sd1Arch): void {
  const table = sd1CheckpointKeyShapes(arch);
  const rank = 4;
  const lora: Record<string, TensorToWrite> = {};
  const norms: Record<string, TensorToWrite> = {};
  for (const [diffusers, ldm] of unetDiffusersModulesToLdm(arch.unet)) {
    const weightKey = `model.diffusion_model.${ldm}.weight`;
    const shape = table.get(weightKey);
    if (!shape) continue;
    if (/(downsamplers|upsamplers)\.0\.conv$/.test(diffusers)) {
      const kohya = `lora_unet_${diffusers.replace(/\./g, '_')}`;
      const [out, inCh, kh, kw] = shape as [number, number, number, number];
      const down = randomFor(`${kohya}.down`, SEED).fillNormal(new Float32Array(rank * inCh * kh * kw), 0, 0.5 / Math.sqrt(inCh * kh * kw));
      const up = randomFor(`${kohya}.up`, SEED).fillNormal(new Float32Array(out * rank), 0, 0.5 / Math.sqrt(rank));
      lora[`${kohya}.lora_down.weight`] = { dtype: 'F16', shape: [rank, inCh, kh, kw], data: down };
      lora[`${kohya}.lora_up.weight`] = { dtype: 'F16', shape: [out, rank, 1, 1], data: up };
      lora[`${kohya}.alpha`] = { dtype: 'F32', shape: [], data: [rank / 2] };
    } else if (/resnets\.\d+\.norm[12]$/.test(diffusers)) {
      for (const part of ['weight', 'bias'] as const) {
        const key = `model.diffusion_model.${ldm}.${part}`;
        const base = initTensor(key, table.get(key)!, SEED);
        const rng = randomFor(`${diffusers}.${part}`, SEED);
        norms[`${diffusers}.${part}`] = { dtype: 'F32', shape: [base.length], data: base.map((v) => v * (1 + 0.15 * rng.normal()) + 0.02 * rng.normal()) };
      }
    }
  }
  writeSafetensors(join(dir, 'pytorch_lora_weights.safetensors'), lora, { format: 'pt', 'resflow.demo': DEMO_VERSION });
  writeSafetensors(join(dir, 'diffusion_pytorch_model.safetensors'), norms, { format: 'pt', 'resflow.demo': DEMO_VERSION });
}
