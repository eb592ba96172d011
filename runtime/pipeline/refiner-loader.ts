import type { ModelFolders } from '../config/model-folders.js';
import { openRefinerCheckpoint, REFINER_PREFIXES, type RefinerCheckpoint } from '../models/families/sdxl-refiner/index.js';
import { OpenClipTextEncoder } from '../models/openclip/index.js';
import { sdxlModelSampling } from '../models/sdxl/sampling.js';
import { UnetModel } from '../models/unet/model.js';
import { Vae } from '../models/vae/index.js';
import type { ModelSampling } from '../sampling/model-sampling.js';
import { ClipTokenizer } from '../text/index.js';
import { resolveTokenizerDir } from './sd1-loader.js';
import { readSidecar } from './sdxl-loader.js';

export interface RefinerModels {
  path: string;
  checkpoint: RefinerCheckpoint;
  unet: UnetModel;
  /** OpenCLIP bigG, the refiner's only text encoder (penultimate layer, no final LN, 0-padded). */
  clipG: OpenClipTextEncoder;
  vae: Vae;
  tokenizer: ClipTokenizer;
  sampling: ModelSampling;
}

/** CheckpointLoaderSimple for the SDXL refiner: the same sidecar as the base names head widths and text configs. */
export async function loadRefiner(path: string, folders: ModelFolders): Promise<RefinerModels> {
  const o = readSidecar(path);
  const checkpoint = openRefinerCheckpoint(path, o.numHeadChannels === undefined ? {} : { numHeadChannels: o.numHeadChannels });
  const tokenizer = ClipTokenizer.fromFolder(resolveTokenizerDir(checkpoint.file, folders), { cleanup: 'basic' });
  const clipG = await OpenClipTextEncoder.load(checkpoint.clipG, { config: o.clipG ?? {}, layerNormIntermediate: false, specialTokens: { start: tokenizer.startId, end: tokenizer.endId, pad: 0 } });
  const unet = new UnetModel(checkpoint.unet, checkpoint.unetConfig);
  const vae = await Vae.load(checkpoint.file, { prefix: REFINER_PREFIXES.vae, scaleFactor: checkpoint.vaeScaleFactor });
  return { path, checkpoint, unet, clipG, vae, tokenizer, sampling: sdxlModelSampling() };
}
