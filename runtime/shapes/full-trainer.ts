/**
 * Trains every tensor of a model, not just an adapter: the forward graph's weights become graph inputs,
 * our autodiff builds the gradient graph, ORT runs it, and AdamW (the same implementation the ResAdapter
 * trainer uses) updates the float32 parameters in TypeScript. State saves bit-exactly (parameters, moments,
 * step, loss history) so a resumed run continues the same trajectory: batch randomness must come from
 * per-step generators (training/buckets.ts stepGenerator), never from a running RNG.
 */
import { existsSync } from 'node:fs';
import { buildGradientGraph } from '../graph/autodiff/index.js';
import type { Graph } from '../graph/ir.js';
import { compileGraph, type CompiledSession, type TensorData } from '../graph/session.js';
import { SafetensorsFile } from '../safetensors/index.js';
import { writeSafetensors, type TensorToWrite } from '../safetensors/writer.js';
import { adamwStep, clipGradients, emptyAdamState, type AdamWOptions, type AdamWState } from '../training/adamw.js';
import type { ParamSpec, ParamStore } from '../training/params.js';
import { weightsAsInputs } from './graph-tools.js';

export interface Schedule {
  lr: number;
  warmupSteps: number;
  totalSteps: number;
  /** The rate at the last step, as a fraction of `lr` (cosine decay from the end of warm-up). */
  finalFactor: number;
}

export function scheduledRate(s: Schedule, step: number): number {
  if (step < s.warmupSteps) return (s.lr * (step + 1)) / s.warmupSteps;
  const t = Math.min(1, (step - s.warmupSteps) / Math.max(1, s.totalSteps - s.warmupSteps));
  return s.lr * (s.finalFactor + (1 - s.finalFactor) * 0.5 * (1 + Math.cos(Math.PI * t)));
}

export interface FullTrainerOptions {
  adamw: AdamWOptions;
  schedule: Schedule;
  /** Max global gradient L2 norm; 0 disables clipping. */
  gradClip: number;
  threads?: number;
  recompute?: boolean;
  /** Keep an exponential moving average of the parameters (diffusion models sample best from it); 0 = none. */
  emaDecay?: number;
}

export interface FullState {
  step: number;
  params: ParamStore;
  adam: AdamWState;
  history: Array<[number, number]>;
  /** The parameters' moving average, when the trainer keeps one. */
  ema?: ParamStore;
}

export interface FullStepResult {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  outputs: Record<string, TensorData>;
}

export class FullTrainer {
  private constructor(
    readonly specs: ParamSpec[],
    readonly session: CompiledSession,
    readonly opts: FullTrainerOptions,
    readonly state: FullState,
  ) {}

  /**
   * `forward` must output a scalar `loss`; its weights that `pick` accepts are trained (their stored values
   * are the initial parameters unless `resume` is given). Other outputs named in `extra` are returned per step.
   */
  static async create(forward: Graph, opts: FullTrainerOptions, pick?: (name: string) => boolean, resume?: FullState, extra: string[] = []): Promise<FullTrainer> {
    const { graph, params } = weightsAsInputs(forward, pick);
    const specs: ParamSpec[] = params.map((p) => ({ name: p.name, shape: p.shape, group: 'lora', target: p.name }));
    const grad = buildGradientGraph(graph, { loss: 'loss', wrt: params.map((p) => p.name), recompute: opts.recompute ?? false });
    for (const name of extra) {
      const o = forward.outputs.find((x) => x.name === name);
      if (!o) throw new Error(`FullTrainer: the forward graph has no output "${name}"`);
      grad.outputs.push({ name, value: o.value });
    }
    const session = await compileGraph(grad, opts.threads ? { threads: opts.threads } : {});
    let state = resume;
    if (state) {
      for (const p of specs) {
        const have = state.params.get(p.name);
        if (!have || have.length !== p.shape.reduce((a, b) => a * b, 1)) throw new Error(`training state does not fit this model: ${p.name}`);
      }
    } else {
      state = { step: 0, params: new Map(params.map((p) => [p.name, p.initial().slice()])), adam: emptyAdamState(specs), history: [] };
    }
    if (opts.emaDecay && !state.ema?.size) state.ema = new Map([...state.params].map(([k, v]) => [k, v.slice()]));
    return new FullTrainer(specs, session, opts, state);
  }

  /** One AdamW step on one batch (`feeds` holds the data inputs; the parameters are added here). */
  async step(feeds: Record<string, TensorData>): Promise<FullStepResult> {
    const all: Record<string, TensorData> = { ...feeds };
    for (const p of this.specs) all[p.name] = { data: this.state.params.get(p.name)!, dims: p.shape };
    const out = await this.session.run(all);
    const loss = (out.loss!.data as Float32Array)[0]!;
    const step = this.state.step;
    if (!Number.isFinite(loss)) throw new Error(`training diverged at step ${step + 1}: the loss is ${loss}`);
    const grads = new Map(this.specs.map((p) => [p.name, out[`grad/${p.name}`]!.data as Float32Array]));
    const gradNorm = clipGradients(grads.values(), this.opts.gradClip);
    const lr = scheduledRate(this.opts.schedule, step);
    adamwStep(this.specs, this.state.params, grads, this.state.adam, 'lora', lr, this.opts.adamw);
    if (this.opts.emaDecay && this.state.ema) {
      // The usual warm-up (1 + t)/(10 + t): early averages do not drag the random initialisation along.
      const d = Math.min(this.opts.emaDecay, (1 + step) / (10 + step));
      for (const [name, p] of this.state.params) {
        const e = this.state.ema.get(name)!;
        for (let i = 0; i < p.length; i++) e[i] = d * e[i]! + (1 - d) * p[i]!;
      }
    }
    this.state.step = step + 1;
    this.state.history.push([step + 1, loss]);
    return { step: step + 1, loss, lr, gradNorm, outputs: out };
  }

  /** Loss (and other outputs) at the current parameters, without updating them. */
  async evaluate(feeds: Record<string, TensorData>): Promise<Record<string, TensorData>> {
    const all: Record<string, TensorData> = { ...feeds };
    for (const p of this.specs) all[p.name] = { data: this.state.params.get(p.name)!, dims: p.shape };
    return this.session.run(all);
  }
}

const META_KEY = 'resflow.shapes.state';

/** Atomic, bit-exact: parameters and both AdamW moments in float32, plus step, history and `meta`. */
export function saveFullState(path: string, specs: readonly ParamSpec[], s: FullState, meta: Record<string, unknown> = {}): void {
  const tensors: Record<string, TensorToWrite> = {};
  for (const p of specs) {
    tensors[`param/${p.name}`] = { dtype: 'F32', shape: p.shape, data: s.params.get(p.name)! };
    tensors[`adam_m/${p.name}`] = { dtype: 'F32', shape: p.shape, data: s.adam.m.get(p.name)! };
    tensors[`adam_v/${p.name}`] = { dtype: 'F32', shape: p.shape, data: s.adam.v.get(p.name)! };
    if (s.ema) tensors[`ema/${p.name}`] = { dtype: 'F32', shape: p.shape, data: s.ema.get(p.name)! };
  }
  writeSafetensors(path, tensors, { [META_KEY]: JSON.stringify({ version: 1, step: s.step, adamSteps: s.adam.steps, history: s.history, ...meta }) });
}

export function loadFullState(path: string): { state: FullState; meta: Record<string, unknown> } | undefined {
  if (!existsSync(path)) return undefined;
  const file = SafetensorsFile.open(path);
  const raw = file.metadata[META_KEY];
  if (!raw) throw new Error(`${path} is not a ResFlow Shapes training state (no ${META_KEY} metadata)`);
  const meta = JSON.parse(raw) as { step: number; adamSteps: AdamWState['steps']; history: Array<[number, number]> } & Record<string, unknown>;
  const read = (prefix: string): ParamStore =>
    new Map(file.keys().filter((k) => k.startsWith(`${prefix}/`)).map((k) => [k.slice(prefix.length + 1), file.readFloat32(k)]));
  const ema = read('ema');
  return {
    state: { step: meta.step, params: read('param'), adam: { m: read('adam_m'), v: read('adam_v'), steps: { ...meta.adamSteps } }, history: meta.history, ...(ema.size ? { ema } : {}) },
    meta,
  };
}
