/**
 * AdamW as torch.optim.AdamW computes it (decoupled weight decay, bias-corrected moments), with float32
 * state. Each parameter group counts its own steps: the GroupNorms are only updated on batches above the
 * base resolution, and their bias correction must follow their own update count, not the global step.
 */
import type { ParamGroup, ParamSpec, ParamStore } from './params.js';

export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Applied to the LoRA matrices only: decaying a GroupNorm scale pulls it toward 0, not toward the base model. */
  weightDecay: number;
}

/** The paper's recipe. */
export const RECIPE_ADAMW: AdamWOptions = { lr: 1e-4, beta1: 0.95, beta2: 0.99, eps: 1e-8, weightDecay: 1e-2 };

export interface AdamWState {
  m: ParamStore;
  v: ParamStore;
  steps: Record<ParamGroup, number>;
}

export function emptyAdamState(params: readonly ParamSpec[]): AdamWState {
  const zeros = () => new Map(params.map((p) => [p.name, new Float32Array(p.shape.reduce((a, b) => a * b, 1))]));
  return { m: zeros(), v: zeros(), steps: { lora: 0, norm: 0 } };
}

/** Linear warm-up to `lr` over `warmup` steps (the first step already gets lr/warmup), then constant. */
export function learningRate(lr: number, warmup: number, step: number): number {
  return warmup > 0 && step < warmup ? (lr * (step + 1)) / warmup : lr;
}

/** torch.nn.utils.clip_grad_norm_: scales all gradients by max/(norm + 1e-6) when their global L2 norm exceeds max. */
export function clipGradients(grads: Iterable<Float32Array>, maxNorm: number): number {
  const list = [...grads];
  let sq = 0;
  for (const g of list) for (let i = 0; i < g.length; i++) sq += g[i]! * g[i]!;
  const norm = Math.sqrt(sq);
  if (maxNorm > 0 && norm > maxNorm) {
    const f = Math.fround(maxNorm / (norm + 1e-6));
    for (const g of list) for (let i = 0; i < g.length; i++) g[i] = g[i]! * f;
  }
  return norm;
}

/**
 * One AdamW update of the parameters of `group` with their gradients, in place. `lr` is this step's rate
 * (after warm-up).
 */
export function adamwStep(
  specs: readonly ParamSpec[],
  params: ParamStore,
  grads: ReadonlyMap<string, Float32Array>,
  state: AdamWState,
  group: ParamGroup,
  lr: number,
  o: AdamWOptions,
): void {
  const t = ++state.steps[group];
  const bc1 = 1 - o.beta1 ** t;
  const bc2Sqrt = Math.sqrt(1 - o.beta2 ** t);
  const stepSize = lr / bc1;
  const decay = group === 'lora' ? 1 - lr * o.weightDecay : 1;
  for (const spec of specs) {
    if (spec.group !== group) continue;
    const p = params.get(spec.name)!;
    const g = grads.get(spec.name)!;
    const m = state.m.get(spec.name)!;
    const v = state.v.get(spec.name)!;
    for (let i = 0; i < p.length; i++) {
      const gi = g[i]!;
      const mi = (m[i] = o.beta1 * m[i]! + (1 - o.beta1) * gi);
      const vi = (v[i] = o.beta2 * v[i]! + (1 - o.beta2) * gi * gi);
      p[i] = p[i]! * decay - (stepSize * mi) / (Math.sqrt(vi) / bc2Sqrt + o.eps);
    }
  }
}
