import type { CompileOptions } from '../../graph/session.js';
import type { ModelSampling } from '../../sampling/model-sampling.js';
import type { SafetensorsFile } from '../../safetensors/reader.js';
import { UnetModel } from '../unet/model.js';
import { Vae } from '../vae/index.js';
import { openSdxlCheckpoint, SDXL_PREFIXES, type SdxlCheckpoint, type SdxlCheckpointOptions } from './checkpoint.js';
import { SdxlTextEncoder, type SdxlTextEncoderOptions } from './conditioning.js';
import { sdxlModelSampling } from './sampling.js';

export interface SdxlLoadOptions extends SdxlCheckpointOptions, SdxlTextEncoderOptions {
  compile?: CompileOptions;
}

/** What CheckpointLoaderSimple gives for an SDXL file: MODEL, CLIP, VAE (+ the schedule). */
export interface SdxlModel {
  checkpoint: SdxlCheckpoint;
  unet: UnetModel;
  text: SdxlTextEncoder;
  vae: Vae;
  modelSampling: ModelSampling;
}

/**
 * Loads every part of an SDXL checkpoint. Graphs are built (so a bad key fails now, naming it) but
 * sessions compile on first use.
 */
export async function loadSdxlModel(source: string | SafetensorsFile, opts: SdxlLoadOptions = {}): Promise<SdxlModel> {
  const checkpoint = openSdxlCheckpoint(source, opts);
  const unet = new UnetModel(checkpoint.unet, checkpoint.unetConfig);
  const text = await SdxlTextEncoder.load(checkpoint, opts);
  const vae = await Vae.load(checkpoint.file, { prefix: SDXL_PREFIXES.vae, scaleFactor: checkpoint.vaeScaleFactor, ...(opts.compile ? { compile: opts.compile } : {}) });
  return { checkpoint, unet, text, vae, modelSampling: sdxlModelSampling() };
}
