import type { ApiPrompt } from '../workflow/api-schema.js';
import { SHAPES_CHECKPOINT, SHAPES_OFFSET_NOISE } from '../shapes/arch.js';
import { RECIPE_ASPECTS } from './buckets.js';
import { DEMO_DATASET } from './demo-dataset.js';

type Node = ApiPrompt[string];
const n = (class_type: string, inputs: Record<string, unknown>, title?: string): Node =>
  ({ class_type, inputs, ...(title ? { _meta: { title } } : {}) }) as Node;

/** The preview sizes: below, above and off the Shapes model's base resolution (128²), at three aspect ratios. */
export const TRAIN_PREVIEW_SIZES: Array<[number, number]> = [
  [96, 96],
  [256, 256],
  [320, 192],
];

/**
 * workflows/train-resadapter.json: dataset → train → save → previews with the new adapter at three sizes.
 * Sized for the ResFlow Shapes model (trained at 128² only) and the generated shapes dataset, a couple of
 * minutes on a CPU; for a real SD1.5 checkpoint set base_resolution 512 and the recipe's steps/batch (the
 * node defaults).
 */
export function trainResAdapterWorkflow(): ApiPrompt {
  const prompt: ApiPrompt = {
    '1': n('CheckpointLoaderSimple', { ckpt_name: SHAPES_CHECKPOINT }, 'Load Checkpoint'),
    '2': n('ResAdapterDataset', {
      vae: ['1', 2],
      clip: ['1', 1],
      folder: DEMO_DATASET,
      base_resolution: 128,
      resolutions: '64, 128, 192, 256',
      aspect_ratios: RECIPE_ASPECTS,
      bucket_step: 32,
      on_problem: 'skip',
    }),
    '3': n('TrainResAdapter', {
      model: ['1', 0],
      dataset: ['2', 0],
      steps: 300,
      batch_size: 8,
      micro_batch: 8,
      learning_rate: 0.001,
      beta1: 0.95,
      beta2: 0.99,
      weight_decay: 0.01,
      warmup_steps: 10,
      grad_clip: 1,
      seed: 0,
      rank: 16,
      alpha: 8,
      checkpoint_every: 50,
      run_name: 'demo-resadapter',
      resume: true,
      recompute: false,
      validate_every: 20,
      offset_noise: SHAPES_OFFSET_NOISE,
    }),
    '4': n('SaveResAdapter', { resadapter: ['3', 0], name: 'resflow-demo-trained' }),
    '5': n('ApplyResAdapter', { model: ['1', 0], resadapter: ['4', 0], alpha: 1, norm_strength: 1 }),
    '6': n('CLIPTextEncode', { text: 'a red circle on a blue background', clip: ['1', 1] }, 'Positive prompt'),
    '7': n('CLIPTextEncode', { text: '', clip: ['1', 1] }, 'Negative prompt'),
  };
  TRAIN_PREVIEW_SIZES.forEach(([width, height], k) => {
    const id = 8 + 4 * k;
    prompt[String(id)] = n('EmptyLatentImage', { width, height, batch_size: 1 });
    prompt[String(id + 1)] = n(
      'KSampler',
      {
        model: ['5', 0],
        seed: 42,
        steps: 20,
        cfg: 7,
        sampler_name: 'euler_ancestral',
        scheduler: 'karras',
        positive: ['6', 0],
        negative: ['7', 0],
        latent_image: [String(id), 0],
        denoise: 1,
      },
      `Preview ${width}×${height}`,
    );
    prompt[String(id + 2)] = n('VAEDecode', { samples: [String(id + 1), 0], vae: ['1', 2] });
    prompt[String(id + 3)] = n('SaveImage', { images: [String(id + 2), 0], filename_prefix: `train-resadapter/${width}x${height}` });
  });
  return prompt;
}
