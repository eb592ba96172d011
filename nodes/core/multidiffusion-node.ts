import { checkMultiDiffusionOptions, multiDiffusionEpsModel } from '../../runtime/pipeline/multidiffusion.js';
import { modelFamily } from '../../runtime/models/families/registry.js';
import type { NodeSpec } from '../spec.js';
import type { ModelValue } from './types.js';


const PIXELS = { type: 'INT', default: 0, min: 0, max: 16384, step: 8 } as const;

/** Pixels to latent cells (the VAE's factor 8), refusing sizes that do not fall on the latent grid. */
function cells(name: string, px: number): number {
  if (px % 8 !== 0) throw new Error(`${name} ${px} is not a multiple of 8`);
  return px / 8;
}

export function multiDiffusionNodes(): NodeSpec[] {
  return [
    {
      name: 'MultiDiffusion',
      displayName: 'MultiDiffusion (tiled sampling)',
      category: 'model_patches/unet',
      description:
        'Samples any size with the model at its own resolution: every step denoises overlapping windows and averages them. ' +
        'Window 0 = the model family\'s native size (SD1.x 512, SDXL 1024); stride 0 = half the window. Costs one UNet pass per window per step.',
      inputs: {
        required: {
          model: { type: 'MODEL' },
          window_width: { ...PIXELS, tooltip: 'window width in pixels (0: the native size)' },
          window_height: { ...PIXELS, tooltip: 'window height in pixels (0: the native size)' },
          stride: { ...PIXELS, tooltip: 'pixels between neighbouring windows (0: half the window)' },
          batch_size: { type: 'INT', default: 4, min: 1, max: 64, tooltip: 'windows per UNet call' },
        },
      },
      outputs: [{ type: 'MODEL' }],
      execute({ model, window_width, window_height, stride, batch_size }) {
        const m = model as ModelValue;
        // The resolution the family was trained at: what a window of size 0 means.
        const native = modelFamily(m.family).nativeResolution;
        const ww = cells('window_width', Number(window_width) || native);
        const wh = cells('window_height', Number(window_height) || native);
        const s = Number(stride);
        if (s && (s > ww * 8 || s > wh * 8)) throw new Error(`stride ${s} is larger than the window ${ww * 8}×${wh * 8}: parts of the image would never be denoised`);
        const st: [number, number] = s ? [cells('stride', s), cells('stride', s)] : [Math.max(1, Math.floor(wh / 2)), Math.max(1, Math.floor(ww / 2))];
        const opts = { window: [wh, ww] as [number, number], stride: st, batch: Number(batch_size) };
        checkMultiDiffusionOptions(opts);
        const wrap = (inner: Parameters<typeof multiDiffusionEpsModel>[0]) => multiDiffusionEpsModel(inner, opts);
        return [{ ...m, epsWrappers: [...(m.epsWrappers ?? []), wrap] } satisfies ModelValue];
      },
    },
  ];
}
