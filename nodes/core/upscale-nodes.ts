import { statSync } from 'node:fs';
import type { ImageBatch } from '../../runtime/image/image.js';
import { UpscaleModel } from '../../runtime/models/upscale/rrdb.js';
import { upscaleImage } from '../../runtime/models/upscale/tiled-upscale.js';
import type { RuntimeEnv } from '../env.js';
import type { NodeSpec } from '../spec.js';

function mtime(env: RuntimeEnv, name: unknown): number {
  try {
    return statSync(env.folders.resolve('upscale_models', String(name))).mtimeMs;
  } catch {
    return NaN;
  }
}

export function upscaleNodes(env: RuntimeEnv): NodeSpec[] {
  return [
    {
      name: 'UpscaleModelLoader',
      displayName: 'Load Upscale Model',
      category: 'loaders',
      description: 'Loads an ESRGAN-family (RRDBNet) upscale model from models/upscale_models: ESRGAN or Real-ESRGAN/BasicSR key layouts.',
      inputs: { required: { model_name: { type: 'COMBO', options: () => env.folders.list('upscale_models') } } },
      outputs: [{ type: 'UPSCALE_MODEL' }],
      isChanged: ({ model_name }) => mtime(env, model_name),
      execute: ({ model_name }) => [UpscaleModel.load(env.folders.resolve('upscale_models', String(model_name)))],
    },
    {
      name: 'ImageUpscaleWithModel',
      displayName: 'Upscale Image (using Model)',
      category: 'image/upscaling',
      description: "Upscales by the model's factor, in 512-pixel tiles overlapping by 32 (as ComfyUI does) for large images.",
      inputs: { required: { upscale_model: { type: 'UPSCALE_MODEL' }, image: { type: 'IMAGE' } } },
      outputs: [{ type: 'IMAGE' }],
      async execute({ upscale_model, image }) {
        const out = await upscaleImage(upscale_model as UpscaleModel, image as ImageBatch);
        return [{ data: out.data, shape: out.shape } satisfies ImageBatch];
      },
    },
  ];
}
