import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import type { ModelFolders } from '../config/model-folders.js';
import { ClipTextEncoder, clipConfigFromHF, type ClipConfig } from '../models/clip/index.js';
import { OpenClipTextEncoder, openClipConfigFromHF, type OpenClipConfig } from '../models/openclip/index.js';
import { openSdxlCheckpoint, SDXL_PREFIXES, SdxlTextEncoder, sdxlModelSampling, type SdxlCheckpoint } from '../models/sdxl/index.js';
import { UnetModel } from '../models/unet/model.js';
import { Vae } from '../models/vae/index.js';
import type { ModelSampling } from '../sampling/model-sampling.js';
import { ClipTokenizer } from '../text/index.js';
import { resolveTokenizerDir } from './sd1-loader.js';

/**
 * CheckpointLoaderSimple for SDXL files: UNet, both text encoders (wired to the tokenizer's special ids),
 * VAE and schedule. What shapes cannot tell (head counts of small test models) comes from the file's
 * metadata, a sidecar `<name>.resflow.json`, or the caller.
 */

/** Overrides for what a checkpoint's shapes cannot tell. */
export interface SdxlArchOverrides {
  /** UNet attention head width (SDXL: 64). */
  numHeadChannels?: number;
  clipL?: Partial<ClipConfig>;
  clipG?: Partial<OpenClipConfig>;
}

/**
 * The sidecar, in the vocabulary of ComfyUI / Hugging Face configs so values can be pasted from them:
 * `unet_config.num_head_channels`, and `clip_l_config` / `clip_g_config` as CLIPTextConfig JSON
 * (`num_attention_heads`, `hidden_act`, ...). Fields given are checked against the file's shapes.
 */
const SidecarSchema = z
  .object({
    unet_config: z.object({ num_head_channels: z.number().int().positive().optional() }).passthrough().optional(),
    clip_l_config: z.record(z.string(), z.unknown()).optional(),
    clip_g_config: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

export const SDXL_SIDECAR_SUFFIX = '.resflow.json';

/** `models/checkpoints/x.safetensors` → `models/checkpoints/x.resflow.json`. */
export function sidecarPath(checkpoint: string): string {
  return checkpoint.replace(/\.safetensors$/i, '') + SDXL_SIDECAR_SUFFIX;
}

/** The sidecar's overrides, or none when there is no sidecar; a malformed one is an error naming it. */
export function readSidecar(checkpoint: string): SdxlArchOverrides {
  const file = sidecarPath(checkpoint);
  if (!existsSync(file)) return {};
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const r = SidecarSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new Error(`${file}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const out: SdxlArchOverrides = {};
  const heads = r.data.unet_config?.num_head_channels;
  if (heads !== undefined) out.numHeadChannels = heads;
  try {
    if (r.data.clip_l_config) out.clipL = clipConfigFromHF(r.data.clip_l_config);
    if (r.data.clip_g_config) out.clipG = openClipConfigFromHF(r.data.clip_g_config);
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  return out;
}

export interface SdxlModels {
  path: string;
  checkpoint: SdxlCheckpoint;
  unet: UnetModel;
  text: SdxlTextEncoder;
  vae: Vae;
  tokenizer: ClipTokenizer;
  sampling: ModelSampling;
}

/** Appends where head counts can be given to errors about them; other errors pass unchanged. */
function withHeadHint(e: unknown, checkpoint: string): unknown {
  if (!(e instanceof Error) || !/head (count|width)/.test(e.message)) return e;
  e.message += ` (for a model whose heads are not 64 wide, give them in ${sidecarPath(checkpoint)}: {"unet_config": {"num_head_channels": N}, "clip_l_config": {"num_attention_heads": N}, "clip_g_config": {"num_attention_heads": N}})`;
  return e;
}

/**
 * Loads every part of an SDXL checkpoint; sessions compile on first use. `overrides` win over the sidecar,
 * which wins over the file's metadata.
 */
export async function loadSdxl(path: string, folders: ModelFolders, overrides: SdxlArchOverrides = {}): Promise<SdxlModels> {
  const o: SdxlArchOverrides = { ...readSidecar(path), ...overrides };
  try {
    const checkpoint = openSdxlCheckpoint(path, o.numHeadChannels === undefined ? {} : { numHeadChannels: o.numHeadChannels });
    const tokenizer = ClipTokenizer.fromFolder(resolveTokenizerDir(checkpoint.file, folders), { cleanup: 'basic' });
    const { startId: start, endId: end } = tokenizer;
    // SDXL's CLIP-L pads with the end token, bigG with 0 (as tokenizeSdxl does).
    const clipL = await ClipTextEncoder.load(checkpoint.clipL, { config: o.clipL ?? {}, layerNormIntermediate: false, specialTokens: { start, end, pad: end } });
    const clipG = await OpenClipTextEncoder.load(checkpoint.clipG, { config: o.clipG ?? {}, layerNormIntermediate: false, specialTokens: { start, end, pad: 0 } });
    for (const [what, vocab] of [
      ['CLIP-L', clipL.config.vocabSize],
      ['bigG', clipG.config.vocabSize],
    ] as const) {
      // An id past the table would read out of bounds in the session rather than fail cleanly.
      if (Math.max(start, end) >= vocab) throw new Error(`${path}: the tokenizer's special ids (${start}, ${end}) do not fit the ${what} vocabulary of ${vocab} tokens`);
    }
    const text = SdxlTextEncoder.of(clipL, clipG);
    const unet = new UnetModel(checkpoint.unet, checkpoint.unetConfig);
    const vae = await Vae.load(checkpoint.file, { prefix: SDXL_PREFIXES.vae, scaleFactor: checkpoint.vaeScaleFactor });
    return { path, checkpoint, unet, text, vae, tokenizer, sampling: sdxlModelSampling() };
  } catch (e) {
    throw withHeadHint(e, path);
  }
}
