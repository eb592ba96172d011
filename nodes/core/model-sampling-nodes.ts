/**
 * Model patches that change how the sampler reads the UNet (comfy_extras/nodes_model_advanced.py):
 * the prediction type and schedule (ModelSamplingDiscrete, ModelSamplingContinuousEDM) and RescaleCFG.
 * Each returns a new MODEL value; other branches of the graph keep the unpatched one.
 */
import { ModelSampling, type Prediction } from '../../runtime/sampling/model-sampling.js';
import { rescaleCfg } from '../../runtime/sampling/rescale-cfg.js';
import type { NodeSpec } from '../spec.js';
import type { ModelValue } from './types.js';

const DISCRETE: Record<string, Prediction> = { eps: 'eps', v_prediction: 'v', lcm: 'lcm', x0: 'x0', img_to_img: 'img_to_img' };
const CONTINUOUS: Record<string, Prediction> = { v_prediction: 'v', edm: 'edm', eps: 'eps' };

export function modelSamplingNodes(): NodeSpec[] {
  return [
    {
      name: 'ModelSamplingDiscrete',
      category: 'advanced/model',
      description: "Sets the model's prediction type (eps, v, LCM, x0, img_to_img) and optionally rescales the schedule to zero terminal SNR.",
      inputs: {
        required: {
          model: { type: 'MODEL' },
          sampling: { type: 'COMBO', options: Object.keys(DISCRETE) },
          zsnr: { type: 'BOOLEAN', default: false },
        },
      },
      outputs: [{ type: 'MODEL' }],
      execute: (i) => {
        const model = i.model as ModelValue;
        const prediction = DISCRETE[String(i.sampling)];
        if (!prediction) throw new Error(`unknown sampling "${String(i.sampling)}" (valid: ${Object.keys(DISCRETE).join(', ')})`);
        const sampling = new ModelSampling({ prediction, zsnr: i.zsnr === true || i.zsnr === 'true', latentFormat: model.sampling.latentFormat });
        return [{ ...model, sampling } satisfies ModelValue];
      },
    },
    {
      name: 'ModelSamplingContinuousEDM',
      category: 'advanced/model',
      description: 'Continuous-time EDM schedule between sigma_min and sigma_max with the given prediction type.',
      inputs: {
        required: {
          model: { type: 'MODEL' },
          sampling: { type: 'COMBO', options: Object.keys(CONTINUOUS) },
          sigma_max: { type: 'FLOAT', default: 120, min: 0, max: 1000, step: 0.001, round: false },
          sigma_min: { type: 'FLOAT', default: 0.002, min: 0, max: 1000, step: 0.001, round: false },
        },
      },
      outputs: [{ type: 'MODEL' }],
      execute: (i) => {
        const model = i.model as ModelValue;
        const prediction = CONTINUOUS[String(i.sampling)];
        if (!prediction) throw new Error(`unknown sampling "${String(i.sampling)}" (valid: ${Object.keys(CONTINUOUS).join(', ')})`);
        const sampling = new ModelSampling({
          prediction,
          latentFormat: model.sampling.latentFormat,
          continuousEdm: { sigmaMin: Number(i.sigma_min), sigmaMax: Number(i.sigma_max) },
        });
        return [{ ...model, sampling } satisfies ModelValue];
      },
    },
    {
      name: 'RescaleCFG',
      category: 'advanced/model',
      description: 'CFG on v-space predictions with the result rescaled towards the positive prediction’s spread (fixes over-exposure of zero-SNR models).',
      inputs: { required: { model: { type: 'MODEL' }, multiplier: { type: 'FLOAT', default: 0.7, min: 0, max: 1, step: 0.01 } } },
      outputs: [{ type: 'MODEL' }],
      execute: (i) => [{ ...(i.model as ModelValue), cfgFunction: rescaleCfg(Number(i.multiplier)) } satisfies ModelValue],
    },
  ];
}
