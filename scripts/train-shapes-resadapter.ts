/**
 * npm run train:shapes-resadapter -- [--steps N] [--batch N] [--lr X] [--images N] [--data DIR] [--no-export]
 *
 * Trains the shipped ResAdapter of the ResFlow Shapes model the way a user would: a workflow of
 * CheckpointLoaderSimple → ResAdapterDataset → TrainResAdapter → SaveResAdapter, run by the same executor as
 * `resflow run`, on a generated multi-aspect Shapes set, with the paper's recipe (buckets around the base
 * resolution drawn with p ∝ |x − 128|², rank 16 / alpha 8, norms trained only above the base, AdamW
 * β 0.95 / 0.99), with the offset noise the base was trained with. The run folder keeps a checkpoint, so rerunning the command resumes. The two saved files are
 * then copied to assets/shapes/resadapter-shapes/, which the demo, the evaluation and the tests use.
 */
import { copyFileSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import '../nodes/core/install.js';
import { cliContext, executePrompt } from '../runtime/cli/run.js';
import { SHAPES_CHECKPOINT, SHAPES_OFFSET_NOISE, SHAPES_RESADAPTER } from '../runtime/shapes/arch.js';
import { ensureShapesModel, SHAPES_RESADAPTER_ASSET } from '../runtime/shapes/provision.js';
import { RECIPE_ASPECTS } from '../runtime/training/buckets.js';
import { ensureShapesSet } from '../runtime/training/demo-dataset.js';
import type { ApiPrompt } from '../runtime/workflow/api-schema.js';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '1200' },
    batch: { type: 'string', default: '16' },
    lr: { type: 'string', default: '0.001' },
    images: { type: 'string', default: '512' },
    data: { type: 'string', default: '.cache/shapes-resadapter' },
    'no-export': { type: 'boolean', default: false },
  },
});

const data = resolve(values.data!);
const ctx = cliContext({ data });
ensureShapesModel(ctx.env.folders.modelsDir);
const set = { name: 'resflow-shapes-resadapter-set', count: Number(values.images), sceneSeed: 9090 };
await ensureShapesSet(ctx.env.inputDir, set);

const steps = Number(values.steps);
const prompt = {
  '1': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: SHAPES_CHECKPOINT } },
  '2': {
    class_type: 'ResAdapterDataset',
    inputs: {
      vae: ['1', 2],
      clip: ['1', 1],
      folder: set.name,
      base_resolution: 128,
      resolutions: '64, 96, 192, 256',
      aspect_ratios: RECIPE_ASPECTS,
      bucket_step: 32,
      on_problem: 'error',
    },
  },
  '3': {
    class_type: 'TrainResAdapter',
    inputs: {
      model: ['1', 0],
      dataset: ['2', 0],
      steps,
      batch_size: Number(values.batch),
      micro_batch: Number(values.batch),
      learning_rate: Number(values.lr),
      beta1: 0.95,
      beta2: 0.99,
      weight_decay: 0.01,
      warmup_steps: 50,
      grad_clip: 1,
      seed: 0,
      rank: 16,
      alpha: 8,
      checkpoint_every: 100,
      run_name: 'shapes-resadapter',
      resume: true,
      recompute: false,
      validate_every: Math.max(1, Math.round(steps / 40)),
      // The base was trained with offset noise; the adapter sees the same noise.
      offset_noise: SHAPES_OFFSET_NOISE,
    },
  },
  '4': { class_type: 'SaveResAdapter', inputs: { resadapter: ['3', 0], name: SHAPES_RESADAPTER } },
} as ApiPrompt;

const outcome = await executePrompt(ctx, prompt);
if (outcome.code !== 0) process.exit(outcome.code);
const saved = join(ctx.env.folders.folder('resadapters'), SHAPES_RESADAPTER);
console.log(`loss chart: ${join(ctx.env.outputDir, 'training', 'shapes-resadapter', 'loss.png')}`);
if (!values['no-export']) {
  mkdirSync(SHAPES_RESADAPTER_ASSET, { recursive: true });
  for (const f of readdirSync(saved)) {
    const tmp = join(SHAPES_RESADAPTER_ASSET, `.${f}.tmp`);
    copyFileSync(join(saved, f), tmp);
    renameSync(tmp, join(SHAPES_RESADAPTER_ASSET, f));
  }
  console.log(`shipped: ${SHAPES_RESADAPTER_ASSET}`);
}
