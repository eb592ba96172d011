/**
 * One training run as the TrainResAdapter node (and the bench) drive it: fresh start or resume from the
 * run folder's checkpoint, the loop, checkpoints, and the trained adapter as a value.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ResAdapterFiles } from '../adapters/resadapter.js';
import type { BatchSource, MicroBatch } from './batches.js';
import { loadValidation, saveValidation, VALIDATION_FILE } from './validation.js';
import { readResAdapterParams } from './export.js';
import { adapterLayout, type AdapterLayout, type ParamStore, type TargetSelector } from './params.js';
import { changedSettings, hasTrainingState, loadTrainingState, STATE_FILE, type Settings } from './state.js';
import { ResAdapterTrainer, settingsRecord, type StepMetrics, type TrainerModel, type TrainerSettings } from './trainer.js';
import type { WeightSet } from '../models/weights.js';

export interface TrainRunOptions {
  model: TrainerModel;
  settings: TrainerSettings;
  rank: number;
  alpha: number;
  /** The model family's ResAdapter targets; every LDM UNet's resamplers and resnet norms when absent. */
  targets?: TargetSelector;
  steps: number;
  source: BatchSource;
  /** Holds state.safetensors; none = no checkpoints. */
  runDir?: string;
  checkpointEvery: number;
  /** Continue from runDir's checkpoint when there is one. */
  resume: boolean;
  /** A ResAdapter to start from instead of the fresh initialisation (fine-tuning); ignored when resuming. */
  startFrom?: ResAdapterFiles;
  signal?: AbortSignal;
  onStep?: (m: StepMetrics, history: ReadonlyArray<[number, number]>, validation: ReadonlyArray<[number, number]>) => void | Promise<void>;
  log?: (message: string) => void;
  /** Fixed batches whose mean loss is measured before training, every `every` steps and at the end. */
  validation?: { every: number; batches: ReadonlyArray<{ label: string; batch: MicroBatch }> };
}

/** The TRAINED_RESADAPTER value: everything SaveResAdapter needs to write the official two files. */
export interface TrainedResAdapter {
  weights: WeightSet;
  layout: AdapterLayout;
  params: ParamStore;
  steps: number;
  history: Array<[number, number]>;
  /** (step, mean loss on the fixed batches), when the run measured it. */
  validation: Array<[number, number]>;
  settings: Settings;
  runDir?: string;
}

export interface TrainRunResult {
  status: 'done' | 'interrupted';
  trained: TrainedResAdapter;
  /** The step a resumed run started from (0 for a fresh run). */
  startedAt: number;
  trainer: ResAdapterTrainer;
}

export async function trainResAdapter(o: TrainRunOptions): Promise<TrainRunResult> {
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new Error(`steps must be a positive integer, got ${o.steps}`);
  const layout = adapterLayout(o.model.weights, o.rank, o.alpha, o.targets);
  const statePath = o.runDir ? join(o.runDir, STATE_FILE) : undefined;
  let resume;
  if (o.resume && statePath && hasTrainingState(statePath)) {
    resume = loadTrainingState(statePath, layout);
    const changed = changedSettings(resume.settings, settingsRecord(o.settings));
    o.log?.(`resuming ${statePath} at step ${resume.step}`);
    if (changed.length) o.log?.(`settings differ from the checkpoint (${changed.join(', ')}): the run will not match an uninterrupted one`);
    resume.settings = settingsRecord(o.settings);
  }
  if (o.runDir) mkdirSync(o.runDir, { recursive: true });
  const trainer = await ResAdapterTrainer.create(o.model, layout, o.settings, resume);
  if (!resume && o.startFrom) {
    for (const [k, v] of readResAdapterParams(o.startFrom, o.model.weights, layout, trainer.state.params)) trainer.state.params.set(k, v);
    o.log?.(`starting from ${o.startFrom.lora}`);
  }
  const startedAt = trainer.step;
  const validationPath = o.runDir ? join(o.runDir, VALIDATION_FILE) : undefined;
  // A resumed run keeps the curve measured so far; a fresh one starts a new curve.
  const validation: Array<[number, number]> = resume && validationPath ? loadValidation(validationPath).filter(([s]) => s <= startedAt) : [];
  const measure = async () => {
    const v = o.validation;
    if (!v || !v.batches.length || validation.at(-1)?.[0] === trainer.step) return;
    let sum = 0;
    for (const { batch } of v.batches) sum += await trainer.evaluate(batch);
    validation.push([trainer.step, sum / v.batches.length]);
    if (validationPath) saveValidation(validationPath, validation);
  };
  // The curve starts at the weights training starts from; a resumed run continues on the same schedule.
  if (!validation.length) await measure();
  const runOpts: Parameters<ResAdapterTrainer['run']>[2] = {};
  if (o.signal) runOpts.signal = o.signal;
  runOpts.onStep = async (m) => {
    if (o.validation && o.validation.every > 0 && (m.step % o.validation.every === 0 || m.step === o.steps)) await measure();
    await o.onStep?.(m, trainer.state.history, validation);
  };
  if (statePath) runOpts.checkpoint = { path: statePath, every: o.checkpointEvery };
  const status = startedAt >= o.steps ? 'done' : await trainer.run(o.source, o.steps, runOpts);
  const s = trainer.state;
  const trained: TrainedResAdapter = { weights: o.model.weights, layout, params: s.params, steps: s.step, history: s.history, validation, settings: s.settings };
  if (o.runDir) trained.runDir = o.runDir;
  return { status, trained, startedAt, trainer };
}
