import { existsSync } from 'node:fs';
import { withPreviewFactors } from '../sampling/preview-factors.js';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ModelFolders } from '../config/model-folders.js';
import { openSd1Checkpoint } from '../models/checkpoint.js';
import { ClipTextEncoder } from '../models/clip/index.js';
import { inferUnetConfig } from '../models/unet/config.js';
import { UnetModel } from '../models/unet/model.js';
import { Vae } from '../models/vae/index.js';
import { ModelSampling, SD15_LATENT_FORMAT } from '../sampling/model-sampling.js';
import { ClipTokenizer } from '../text/index.js';
import type { SafetensorsFile } from '../safetensors/reader.js';

/** The CLIP-L vocab folder name users put under models/tokenizers (ComfyUI ships it as comfy/sd1_tokenizer). */
export const CLIP_L_TOKENIZER = 'clip-vit-large-patch14';

/** OpenAI CLIP's BPE vocabulary shipped with ResFlow (MIT, notice beside it): a checkpoint alone is enough. */
export const BUNDLED_CLIP_TOKENIZER = fileURLToPath(new URL('../../assets/clip-tokenizer', import.meta.url));

export class TokenizerNotFoundError extends Error {
  constructor(checkpoint: string, searched: string[]) {
    super(
      `${checkpoint}: no CLIP tokenizer found (looked in ${searched.join(', ') || 'no folders'}). ` +
        `Put vocab.json and merges.txt of openai/clip-vit-large-patch14 in models/tokenizers/${CLIP_L_TOKENIZER}/ ` +
        `(an existing ComfyUI install has them in comfy/sd1_tokenizer/: list it under "tokenizerDirs" in resflow.config.json).`,
    );
    this.name = 'TokenizerNotFoundError';
  }
}

/**
 * Where a checkpoint's tokenizer lives: the folder its metadata names (`resflow.tokenizer`, our demo model),
 * else models/tokenizers/clip-vit-large-patch14, else the configured tokenizer folders, else RESFLOW_TOKENIZER_DIR,
 * else the CLIP vocabulary shipped with ResFlow. Nothing is ever downloaded.
 */
export function resolveTokenizerDir(file: SafetensorsFile, folders: ModelFolders): string {
  const searched: string[] = [];
  const named = file.metadata['resflow.tokenizer'];
  const candidates = [named, CLIP_L_TOKENIZER].filter((x): x is string => Boolean(x));
  for (const name of candidates) {
    for (const root of folders.roots) {
      const dir = join(root, 'tokenizers', name);
      searched.push(dir);
      if (existsSync(join(dir, 'vocab.json'))) return dir;
    }
  }
  // A checkpoint that names its own vocabulary (the demo model's) must not silently get CLIP's.
  const fallbacks = [...folders.tokenizerDirs, process.env.RESFLOW_TOKENIZER_DIR, named ? undefined : BUNDLED_CLIP_TOKENIZER];
  for (const dir of fallbacks.filter((x): x is string => Boolean(x))) {
    searched.push(dir);
    if (existsSync(join(dir, 'vocab.json'))) return dir;
  }
  throw new TokenizerNotFoundError(file.path, searched);
}

export interface Sd1Models {
  path: string;
  unet: UnetModel;
  clip: ClipTextEncoder;
  vae: Vae;
  tokenizer: ClipTokenizer;
  sampling: ModelSampling;
}

/** Loads everything a CheckpointLoaderSimple gives: UNet, text encoder (+ tokenizer), VAE. Sessions compile lazily. */
export async function loadSd1(path: string, folders: ModelFolders): Promise<Sd1Models> {
  const ck = openSd1Checkpoint(path);
  const tokenizer = ClipTokenizer.fromFolder(resolveTokenizerDir(ck.file, folders), { cleanup: 'basic' });
  const unet = new UnetModel(ck.unet, inferUnetConfig(ck.unet, {}, ck.file.metadata));
  const clip = await ClipTextEncoder.load(ck.clip, { specialTokens: { start: tokenizer.startId, end: tokenizer.endId, pad: tokenizer.padId } });
  const vae = await Vae.load(ck.file, { prefix: 'first_stage_model.' });
  // A checkpoint with its own VAE may carry its own preview colours (ResFlow Shapes does).
  const latentFormat = withPreviewFactors(SD15_LATENT_FORMAT, ck.file.metadata, path);
  return { path, unet, clip, vae, tokenizer, sampling: new ModelSampling({ latentFormat }) };
}
