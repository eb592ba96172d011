/**
 * Training checkpoints: parameters and AdamW moments in float32 (bit-exact, so a resumed run continues the
 * same trajectory), step counters, loss history and the settings, in one safetensors file written
 * atomically — a crash or an interrupt mid-write leaves the previous checkpoint intact.
 */
import { existsSync } from 'node:fs';
import { SafetensorsFile } from '../safetensors/index.js';
import { writeSafetensors, type TensorToWrite } from '../safetensors/writer.js';
import type { AdamWState } from './adamw.js';
import type { AdapterLayout, ParamGroup, ParamStore } from './params.js';

export const STATE_FILE = 'state.safetensors';
const META_KEY = 'resflow.training.state';

export type Settings = Record<string, number | string | boolean>;

export interface TrainingState {
  step: number;
  params: ParamStore;
  adam: AdamWState;
  /** [step, loss] per step, for the loss chart. */
  history: Array<[number, number]>;
  settings: Settings;
}

export class TrainingStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainingStateError';
  }
}

export function saveTrainingState(path: string, layout: AdapterLayout, s: TrainingState): void {
  const tensors: Record<string, TensorToWrite> = {};
  for (const p of layout.params) {
    tensors[`param/${p.name}`] = { dtype: 'F32', shape: p.shape, data: s.params.get(p.name)! };
    tensors[`adam_m/${p.name}`] = { dtype: 'F32', shape: p.shape, data: s.adam.m.get(p.name)! };
    tensors[`adam_v/${p.name}`] = { dtype: 'F32', shape: p.shape, data: s.adam.v.get(p.name)! };
  }
  const meta = { version: 1, step: s.step, adamSteps: s.adam.steps, rank: layout.rank, alpha: layout.alpha, history: s.history, settings: s.settings };
  writeSafetensors(path, tensors, { [META_KEY]: JSON.stringify(meta) });
}

export function hasTrainingState(path: string): boolean {
  return existsSync(path);
}

/** Loads a checkpoint for `layout`; a checkpoint of another rank or another UNet is refused, naming the difference. */
export function loadTrainingState(path: string, layout: AdapterLayout): TrainingState {
  let file: SafetensorsFile;
  try {
    file = SafetensorsFile.open(path);
  } catch (e) {
    throw new TrainingStateError(`training checkpoint ${path} cannot be read: ${(e as Error).message}`);
  }
  const raw = file.metadata[META_KEY];
  if (!raw) throw new TrainingStateError(`${path} is not a ResFlow training checkpoint (no ${META_KEY} metadata)`);
  const meta = JSON.parse(raw) as {
    version: number;
    step: number;
    adamSteps: Record<ParamGroup, number>;
    rank: number;
    alpha: number;
    history: Array<[number, number]>;
    settings: Settings;
  };
  if (meta.version !== 1) throw new TrainingStateError(`${path}: checkpoint version ${meta.version} is not supported`);
  if (meta.rank !== layout.rank || meta.alpha !== layout.alpha) {
    throw new TrainingStateError(`${path} was trained with rank ${meta.rank}, alpha ${meta.alpha}; this run asks for rank ${layout.rank}, alpha ${layout.alpha}`);
  }
  const want = new Set(layout.params.map((p) => `param/${p.name}`));
  const have = file.keys().filter((k) => k.startsWith('param/'));
  const extra = have.filter((k) => !want.has(k));
  const missing = [...want].filter((k) => !file.has(k));
  if (extra.length || missing.length) {
    throw new TrainingStateError(
      `${path} belongs to another UNet: ${missing.length ? `missing ${missing.slice(0, 3).join(', ')}` : ''}${extra.length ? ` unknown ${extra.slice(0, 3).join(', ')}` : ''}`,
    );
  }
  const read = (prefix: string): ParamStore =>
    new Map(
      layout.params.map((p) => {
        const key = `${prefix}/${p.name}`;
        const shape = file.info(key).shape;
        if (shape.join() !== p.shape.join()) throw new TrainingStateError(`${path}: ${key} is [${shape.join(', ')}], expected [${p.shape.join(', ')}]`);
        return [p.name, file.readFloat32(key)];
      }),
    );
  return {
    step: meta.step,
    params: read('param'),
    adam: { m: read('adam_m'), v: read('adam_v'), steps: { ...meta.adamSteps } },
    history: meta.history,
    settings: meta.settings,
  };
}

/** Settings that differ between a checkpoint and the run resuming it (the trajectory then differs from an uninterrupted run). */
export function changedSettings(saved: Settings, now: Settings): string[] {
  return Object.keys(now)
    .filter((k) => k in saved && saved[k] !== now[k])
    .map((k) => `${k} ${String(saved[k])} → ${String(now[k])}`);
}
