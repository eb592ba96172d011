/**
 * What a ResAdapter trains, as named tensors: a conv LoRA (down, up) on every down/upsampler conv and the
 * affine of every resnet GroupNorm. Names are UNet-relative LDM keys, the same the graph binds.
 */
import { resAdapterTargets } from '../models/unet/unet.js';
import type { WeightSet } from '../models/weights.js';
import { stepGenerator } from './buckets.js';

export type ParamGroup = 'lora' | 'norm';

export interface ParamSpec {
  /** Graph input name, e.g. `lora_down/input_blocks.3.0.op` or `norm/input_blocks.1.0.in_layers.0.weight`. */
  name: string;
  shape: number[];
  group: ParamGroup;
  /** The UNet-relative weight key the parameter patches or replaces. */
  target: string;
}

export interface LoraModule {
  /** UNet-relative module, e.g. `input_blocks.3.0.op`; the patched weight is `<module>.weight`. */
  module: string;
  /** [out, in, kh, kw] of the base conv. */
  shape: [number, number, number, number];
  down: string;
  up: string;
}

export interface AdapterLayout {
  rank: number;
  alpha: number;
  lora: LoraModule[];
  /** UNet-relative GroupNorm weight/bias keys. */
  norms: string[];
  params: ParamSpec[];
}

export type ParamStore = Map<string, Float32Array>;

/** Orders `a.10` after `a.9`, so the layout (and so the checkpoint) does not depend on file order. */
function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

export const loraDownName = (module: string) => `lora_down/${module}`;
export const loraUpName = (module: string) => `lora_up/${module}`;
export const normName = (key: string) => `norm/${key}`;

/** What the layout reads of a UNet: tensor names and shapes (a WeightSet, or a key table in tests). */
export type UnetTensors = Pick<WeightSet, 'names' | 'shape'> & { file?: { path: string } };

/** Which UNet keys a ResAdapter adapts: a model family's `resAdapter.targets` (every family's LDM UNet by default). */
export type TargetSelector = (w: Pick<WeightSet, 'names'>) => Set<string>;

export function adapterLayout(w: UnetTensors, rank: number, alpha: number, select: TargetSelector = resAdapterTargets): AdapterLayout {
  if (!Number.isInteger(rank) || rank < 1) throw new Error(`LoRA rank must be a positive integer, got ${rank}`);
  if (!Number.isFinite(alpha) || alpha <= 0) throw new Error(`LoRA alpha must be positive, got ${alpha}`);
  const targets = [...select(w)].sort(naturalCompare);
  const lora: LoraModule[] = [];
  const norms: string[] = [];
  for (const key of targets) {
    if (/\.(in_layers|out_layers)\.0\.(weight|bias)$/.test(key)) norms.push(key);
    else if (key.endsWith('.weight')) {
      const shape = w.shape(key);
      if (shape.length !== 4) throw new Error(`${key}: expected a conv weight, got shape [${shape.join(', ')}]`);
      const module = key.slice(0, -'.weight'.length);
      lora.push({ module, shape: shape as LoraModule['shape'], down: loraDownName(module), up: loraUpName(module) });
    }
  }
  if (!lora.length) throw new Error(`${w.file?.path ?? 'UNet'}: the UNet has no down/upsampler convs to train a ResAdapter on`);
  const params: ParamSpec[] = [];
  for (const m of lora) {
    const [out, inCh, kh, kw] = m.shape;
    params.push({ name: m.down, shape: [rank, inCh, kh, kw], group: 'lora', target: `${m.module}.weight` });
    params.push({ name: m.up, shape: [out, rank, 1, 1], group: 'lora', target: `${m.module}.weight` });
  }
  for (const key of norms) params.push({ name: normName(key), shape: w.shape(key), group: 'norm', target: key });
  return { rank, alpha, lora, norms, params };
}

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Fresh parameters: LoRA down as kohya/peft draw it (kaiming-uniform, a = √5, i.e. U(±1/√fan_in)), LoRA up
 * zero so the adapter starts as the identity, norms copied from the model being adapted.
 */
export function initParams(layout: AdapterLayout, baseWeight: (key: string) => Float32Array, seed: number): ParamStore {
  const store: ParamStore = new Map();
  // Stream 2 of step 0: independent of the batch draws (streams 0 and 1) for the same seed.
  const rng = stepGenerator(seed, 0, 2);
  for (const p of layout.params) {
    const data = new Float32Array(numel(p.shape));
    if (p.group === 'norm') data.set(baseWeight(p.target));
    else if (p.name.startsWith('lora_down/')) {
      const bound = 1 / Math.sqrt(numel(p.shape.slice(1)));
      for (let i = 0; i < data.length; i++) data[i] = (rng.uniformDouble() * 2 - 1) * bound;
    }
    store.set(p.name, data);
  }
  return store;
}

export function cloneStore(s: ParamStore): ParamStore {
  return new Map([...s].map(([k, v]) => [k, v.slice()]));
}
