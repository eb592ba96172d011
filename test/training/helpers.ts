/** Shared fixtures for the training tests: the demo SD1 model in a temp folder and seeded batches. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelFolders } from '../../runtime/config/model-folders.js';
import { ensureDemoModels, type DemoPaths } from '../../runtime/models/synthetic/demo.js';
import { loadSd1, type Sd1Models } from '../../runtime/pipeline/sd1-loader.js';
import { TorchGenerator } from '../../runtime/sampling/torch-rng.js';
import type { MicroBatch } from '../../runtime/training/batches.js';
import type { TrainerModel, TrainerSettings } from '../../runtime/training/trainer.js';
import { RECIPE_ADAMW } from '../../runtime/training/adamw.js';

export interface DemoModel {
  dir: string;
  paths: DemoPaths;
  sd1: Sd1Models;
  model: TrainerModel;
}

export async function demoModel(prefix = 'resflow-train-'): Promise<DemoModel> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const paths = ensureDemoModels(join(dir, 'models'));
  const sd1 = await loadSd1(paths.checkpoint, new ModelFolders(dir));
  return { dir, paths, sd1, model: { weights: sd1.unet.weights, config: sd1.unet.config, alphasCumprod: sd1.sampling.alphasCumprod } };
}

/** A random batch for the demo UNet (4 latent channels, 64-wide text context). */
export function randomMicro(seed: number, b: number, h: number, w: number, timesteps?: number[]): MicroBatch {
  const g = new TorchGenerator(seed);
  return {
    x0: g.randn(b * 4 * h * w),
    noise: g.randn(b * 4 * h * w),
    timesteps: Float32Array.from(timesteps ?? Array.from({ length: b }, (_, i) => 150 + ((i * 397) % 800))),
    context: g.randn(b * 77 * 64),
    dims: [b, 4, h, w],
    contextDims: [b, 77, 64],
  };
}

export function settings(over: Partial<TrainerSettings> = {}): TrainerSettings {
  return { batchSize: 2, microBatch: 2, adamw: { ...RECIPE_ADAMW, lr: 1e-2 }, warmupSteps: 0, gradClip: 0, seed: 7, recompute: false, ...over };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
