import type { CaseKind } from './types.js';
import { refinerClipKind, refinerUnetKind } from './sdxl-refiner.js';
import { refinerSamplersKind } from './sdxl-refiner-sampling.js';
import { refinerTwoStageKind } from './sdxl-two-stage.js';
import { sdxlControlNetSamplersKind, sdxlControlNetUnetKind } from './sdxl-controlnet.js';
import { sdxlLoraKind } from './sdxl-lora.js';
import { sdxlResAdapterTrainShapesKind } from './sdxl-resadapter-train.js';
import { embeddingsKind } from './embeddings.js';

/** Kinds of `conformance-sdxl-next` (refiner, SDXL ControlNet, text-encoder LoRA, embeddings, training layout). */
export const SDXL_NEXT_KINDS: CaseKind[] = [refinerUnetKind, refinerClipKind, refinerSamplersKind, refinerTwoStageKind, sdxlLoraKind, sdxlControlNetUnetKind, sdxlControlNetSamplersKind, sdxlResAdapterTrainShapesKind, embeddingsKind];
