/** AdamW against a direct transcription of torch.optim.AdamW, warm-up, and global-norm clipping. */
import { describe, expect, it } from 'vitest';
import { adamwStep, clipGradients, emptyAdamState, learningRate, RECIPE_ADAMW } from '../../runtime/training/adamw.js';
import type { ParamSpec } from '../../runtime/training/params.js';

/** torch.optim.AdamW.step (amsgrad off, maximize off) for one tensor, in float64. */
function torchAdamW(p: number[], grads: number[][], lr: number, b1: number, b2: number, eps: number, wd: number): number[] {
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  const x = [...p];
  grads.forEach((g, k) => {
    const t = k + 1;
    for (let i = 0; i < x.length; i++) {
      x[i]! *= 1 - lr * wd;
      m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
      v[i] = b2 * v[i]! + (1 - b2) * g[i]! * g[i]!;
      const denom = Math.sqrt(v[i]!) / Math.sqrt(1 - b2 ** t) + eps;
      x[i]! -= (lr / (1 - b1 ** t)) * (m[i]! / denom);
    }
  });
  return x;
}

describe('AdamW', () => {
  const specs: ParamSpec[] = [
    { name: 'lora_down/a', shape: [3], group: 'lora', target: 'a.weight' },
    { name: 'norm/b', shape: [2], group: 'norm', target: 'b.weight' },
  ];
  const grads = [
    [0.3, -2, 1e-3],
    [-0.1, 4, 2e-3],
    [0.25, 0.5, -1e-3],
  ];

  it("matches torch's AdamW with the recipe's betas; decay only on LoRA; each group counts its own steps", () => {
    const o = { ...RECIPE_ADAMW, lr: 0.01, weightDecay: 0.1 };
    const params = new Map([
      ['lora_down/a', Float32Array.from([0.5, -1, 2])],
      ['norm/b', Float32Array.from([1, 0.2])],
    ]);
    const state = emptyAdamState(specs);
    grads.forEach((g, k) => {
      const step = new Map([
        ['lora_down/a', Float32Array.from(g)],
        ['norm/b', Float32Array.from(g.slice(0, 2))],
      ]);
      adamwStep(specs, params, step, state, 'lora', o.lr, o);
      // The norms learn from the first and last batch only.
      if (k !== 1) adamwStep(specs, params, step, state, 'norm', o.lr, o);
    });
    const want = torchAdamW([0.5, -1, 2], grads, o.lr, o.beta1, o.beta2, o.eps, o.weightDecay);
    [...params.get('lora_down/a')!].forEach((x, i) => expect(x).toBeCloseTo(want[i]!, 6));
    const wantNorm = torchAdamW([1, 0.2], [grads[0]!.slice(0, 2), grads[2]!.slice(0, 2)], o.lr, o.beta1, o.beta2, o.eps, 0);
    [...params.get('norm/b')!].forEach((x, i) => expect(x).toBeCloseTo(wantNorm[i]!, 6));
    expect(state.steps).toEqual({ lora: 3, norm: 2 });
  });

  it('warms up linearly from lr/warmup to lr, then stays constant', () => {
    expect(learningRate(1e-4, 10, 0)).toBeCloseTo(1e-5, 12);
    expect(learningRate(1e-4, 10, 4)).toBeCloseTo(5e-5, 12);
    expect(learningRate(1e-4, 10, 9)).toBe(1e-4);
    expect(learningRate(1e-4, 10, 5000)).toBe(1e-4);
    expect(learningRate(1e-4, 0, 0)).toBe(1e-4);
  });

  it('clips by the global L2 norm like clip_grad_norm_, and leaves small gradients alone', () => {
    const a = Float32Array.from([3, 0]);
    const b = Float32Array.from([0, 4]);
    expect(clipGradients([a, b], 1)).toBeCloseTo(5, 6);
    expect([...a, ...b].map((x) => Math.round(x * 1e5) / 1e5)).toEqual([0.6, 0, 0, 0.8]);
    const c = Float32Array.from([0.1, 0.2]);
    expect(clipGradients([c], 1)).toBeCloseTo(Math.sqrt(0.05), 6);
    expect([...c]).toEqual([Math.fround(0.1), Math.fround(0.2)]);
    expect(clipGradients([Float32Array.from([30, 40])], 0)).toBe(50);
  });
});
