import { loadResAdapter, type ResAdapter } from '../../runtime/adapters/resadapter.js';
import { applyResAdapter, checkpointKeyShapes, type ResAdapterParts } from '../../runtime/pipeline/adapter-loaders.js';
import type { NodeSpec } from '../spec.js';
import type { ModelValue } from './types.js';

const PARTS: Record<string, ResAdapterParts> = { 'lora only': 'lora', 'norms only': 'norms', 'lora and norms': 'all' };

/**
 * One half of a ResAdapter, for the paper's ablations: the resampler LoRA alone or the GroupNorms alone.
 * A separate node so ApplyResAdapter's widgets (and every saved workflow using it) stay as they are.
 */
export function resAdapterPartsNodes(): NodeSpec[] {
  return [
    {
      name: 'ApplyResAdapterPart',
      displayName: 'Apply ResAdapter (one part)',
      category: 'loaders/resadapter',
      description: 'Applies only the LoRA (down/upsampler convs, scaled by alpha) or only the replacement GroupNorms (blended by norm_strength) of a ResAdapter.',
      inputs: {
        required: {
          model: { type: 'MODEL' },
          resadapter: { type: 'RESADAPTER' },
          part: { type: 'COMBO', options: Object.keys(PARTS) },
          alpha: { type: 'FLOAT', default: 1, min: 0, max: 2, step: 0.05 },
          norm_strength: { type: 'FLOAT', default: 1, min: 0, max: 1, step: 0.05 },
        },
      },
      outputs: [{ type: 'MODEL' }],
      execute({ model, resadapter, part, alpha, norm_strength }) {
        const m = model as ModelValue;
        const parts = PARTS[String(part)];
        if (!parts) throw new Error(`unknown part "${String(part)}"`);
        const adapter = loadResAdapter((resadapter as Pick<ResAdapter, 'files'>).files, checkpointKeyShapes(m.unet.base.weights.file));
        // The norms only apply at a non-zero strength: with only norms, alpha has no LoRA to scale and stays 1.
        const strength = parts === 'norms' ? 1 : Number(alpha);
        const r = applyResAdapter(m.unet, adapter, strength, { normStrength: Number(norm_strength), parts });
        return [{ ...m, unet: r.model }];
      },
    },
  ];
}
