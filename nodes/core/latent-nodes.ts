import { totalmem } from 'node:os';
import { commonUpscale, LATENT_UPSCALE_METHODS, latentUpscaleTarget, type UpscaleMethodName } from '../../runtime/image/upscale.js';
import type { NodeSpec } from '../spec.js';
import type { LatentValue } from './types.js';


/** The largest side we accept, in pixels: well past what fits in memory on a CPU anyway. */
export const MAX_RESOLUTION = 16384;

/**
 * Refuses a tensor that could never be computed with this machine's memory, with the numbers, instead of
 * letting an allocation fail deep inside a model. A quarter of RAM for the tensor itself leaves room for the
 * model and its activations, which are many times larger.
 */
export function checkTensorFits(what: string, elements: number, node = 'node'): void {
  const bytes = elements * 4;
  const limit = totalmem() / 4;
  if (bytes > limit) {
    const gb = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
    throw new Error(`${node}: ${what} needs ${gb(bytes)}, more than this machine can process (${gb(totalmem())} of RAM); use a smaller size or batch`);
  }
}

export function latentNodes(): NodeSpec[] {
  return [
    {
      name: 'EmptyLatentImage',
      displayName: 'Empty Latent Image',
      category: 'latent',
      description: 'A batch of zero latents; the sampler adds the seed noise.',
      inputs: {
        required: {
          width: { type: 'INT', default: 512, min: 16, max: MAX_RESOLUTION, step: 8 },
          height: { type: 'INT', default: 512, min: 16, max: MAX_RESOLUTION, step: 8 },
          batch_size: { type: 'INT', default: 1, min: 1, max: 4096 },
        },
      },
      outputs: [{ type: 'LATENT' }],
      execute({ width, height, batch_size }) {
        const h = Math.floor(Number(height) / 8);
        const w = Math.floor(Number(width) / 8);
        const b = Number(batch_size);
        checkTensorFits(`a ${width}×${height} latent batch of ${b}`, b * 4 * h * w, 'EmptyLatentImage');
        const latent: LatentValue = { samples: { data: new Float32Array(b * 4 * h * w), shape: [b, 4, h, w] } };
        return [latent];
      },
    },
    {
      name: 'LatentUpscale',
      displayName: 'Upscale Latent',
      category: 'latent',
      inputs: {
        required: {
          samples: { type: 'LATENT' },
          upscale_method: { type: 'COMBO', options: LATENT_UPSCALE_METHODS },
          width: { type: 'INT', default: 512, min: 0, max: MAX_RESOLUTION, step: 8 },
          height: { type: 'INT', default: 512, min: 0, max: MAX_RESOLUTION, step: 8 },
          crop: { type: 'COMBO', options: ['disabled', 'center'] },
        },
      },
      outputs: [{ type: 'LATENT' }],
      execute({ samples, upscale_method, width, height, crop }) {
        const s = (samples as LatentValue).samples;
        const [, , h0, w0] = s.shape;
        // ComfyUI's sizes: pixels, each given side at least 64, a 0 side keeping the aspect, then //8.
        const t = latentUpscaleTarget(w0, h0, Number(width), Number(height));
        if (!t) return [samples];
        checkTensorFits(`an upscaled ${t.width * 8}×${t.height * 8} latent batch of ${s.shape[0]}`, s.shape[0] * s.shape[1] * t.height * t.width, 'LatentUpscale');
        const r = commonUpscale(s, t.width, t.height, upscale_method as UpscaleMethodName, crop as 'disabled' | 'center');
        return [{ ...(samples as LatentValue), samples: { data: r.data, shape: r.shape } }];
      },
    },
  ];
}
