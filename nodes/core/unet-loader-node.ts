import { statSync } from 'node:fs';
import { PatchedUnet } from '../../runtime/pipeline/patched-model.js';
import { loadUnetOnly, UNET_WEIGHT_DTYPES } from '../../runtime/pipeline/unet-only-loader.js';
import type { RuntimeEnv } from '../env.js';
import type { NodeSpec } from '../spec.js';
import type { ModelValue } from './types.js';

/** ComfyUI's diffusion_models list also shows the older models/unet folder; the newer name wins on a clash. */
const FOLDERS = ['diffusion_models', 'unet'] as const;

function listUnets(env: RuntimeEnv): string[] {
  return [...new Set(FOLDERS.flatMap((k) => env.folders.list(k)))].sort();
}

function resolveUnet(env: RuntimeEnv, name: string): string {
  for (const kind of FOLDERS) {
    try {
      return env.folders.resolve(kind, name);
    } catch {
      // try the other folder; the error below names both
    }
  }
  const roots = env.folders.roots.flatMap((r) => FOLDERS.map((k) => `${r}/${k}`));
  throw new Error(`diffusion model "${name}" not found (looked in ${roots.join(', ')})`);
}

/** UNETLoader ("Load Diffusion Model"): a UNet-only file as a MODEL, its family read from the keys. */
export function unetLoaderNodes(env: RuntimeEnv): NodeSpec[] {
  return [
    {
      name: 'UNETLoader',
      displayName: 'Load Diffusion Model',
      category: 'advanced/loaders',
      description:
        'Loads a diffusion model alone (UNet keys bare or under model.diffusion_model.) from models/diffusion_models or models/unet; SD1.x, SDXL and the SDXL refiner are told apart by their shapes.',
      inputs: {
        required: {
          unet_name: { type: 'COMBO', options: () => listUnets(env) },
          weight_dtype: { type: 'COMBO', options: [...UNET_WEIGHT_DTYPES], default: 'default' },
        },
      },
      outputs: [{ type: 'MODEL' }],
      isChanged: ({ unet_name }) => {
        try {
          return statSync(resolveUnet(env, String(unet_name))).mtimeMs;
        } catch {
          return NaN;
        }
      },
      execute({ unet_name, weight_dtype }, ctx) {
        const m = loadUnetOnly(resolveUnet(env, String(unet_name)));
        if (weight_dtype !== 'default') {
          // fp8 storage changes ComfyUI's numbers slightly; running the float32 weights is the faithful fallback here.
          ctx.log(`UNETLoader: weight_dtype ${String(weight_dtype)} is not available; the weights run in float32`);
        }
        const model: ModelValue = { family: m.family, unet: PatchedUnet.of(m.unet), sampling: m.sampling };
        return [model];
      },
    },
  ];
}
