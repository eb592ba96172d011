/**
 * DiffControlNetLoader: a "diff" ControlNet stores its UNet-copy weights as differences to the base model
 * (a `difference` marker key, original `control_model.` layout). ComfyUI adds the model's weights to every
 * key the UNet shares at load time; here that sum is a lazily merged weight view, so neither file changes.
 * Files without the marker load as ordinary ControlNets.
 */
import { ControlNet } from '../models/controlnet/controlnet.js';
import { mergeWeightSets } from '../models/merged-weights.js';
import { WeightSet } from '../models/weights.js';
import { SafetensorsFile } from '../safetensors/reader.js';
import { addRule } from './model-merge.js';
import type { PatchedUnet } from './patched-model.js';

export async function loadDiffControlNet(path: string, model: PatchedUnet): Promise<ControlNet> {
  const file = SafetensorsFile.open(path);
  if (!file.has('difference') || !file.has('control_model.input_hint_block.0.weight')) return ControlNet.load(path);
  const own = new WeightSet(file, 'control_model.');
  const unet = model.base.weights;
  const overrides = model.overrides();
  const ws = mergeWeightSets(own, { weights: unet, read: (k) => overrides?.get(k) ?? (unet.file.has(k) ? unet.file.readFloat32(k) : undefined) }, addRule, `diff-controlnet;${model.adapters.map((a) => `${a.id}@${a.strength}`).join(',')}`);
  const heads = Number(unet.file.metadata['resflow.unet.num_heads'] ?? NaN);
  return ControlNet.fromWeights(path, ws, Number.isFinite(heads) ? { numHeads: heads } : model.base.config.numHeads > 0 ? { numHeads: model.base.config.numHeads } : { numHeadChannels: model.base.config.numHeadChannels });
}
