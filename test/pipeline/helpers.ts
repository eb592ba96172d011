import { join } from 'node:path';
import { expect } from 'vitest';
import { ConformanceCase, compareTensor } from '../../runtime/conformance/case.js';
import { headOverrides } from '../../runtime/conformance/models.js';
import { ClipTextEncoder, clipConfigFromHF } from '../../runtime/models/clip/index.js';
import { inferUnetConfig } from '../../runtime/models/unet/config.js';
import { UnetModel } from '../../runtime/models/unet/model.js';
import { WeightSet } from '../../runtime/models/weights.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import { shared } from '../shared-data.js';

export const CONFORMANCE_DIR = shared('conformance');
export const RESADAPTER_DIR = shared('resadapter');
export const CHECKPOINT = join(CONFORMANCE_DIR, 'models', 'tiny-sd15-a.safetensors');
export const RESADAPTER_A = join(CONFORMANCE_DIR, 'models', 'resadapter-a');
export const LORA_PEFT = join(CONFORMANCE_DIR, 'models', 'lora-peft-a', 'pytorch_lora_weights.safetensors');
export const LORA_KOHYA = join(CONFORMANCE_DIR, 'models', 'lora-kohya-a', 'lora.safetensors');

export function loadCase(name: string): ConformanceCase {
  return new ConformanceCase(join(CONFORMANCE_DIR, name));
}

/**
 * A UNet of the tiny checkpoint on its own file handle and UnetModel, so patchable-set changes made by one
 * test never reach another's model.
 */
export function freshUnet(c: ConformanceCase): UnetModel {
  const file = SafetensorsFile.open(CHECKPOINT);
  const w = new WeightSet(file, 'model.diffusion_model.');
  return new UnetModel(w, inferUnetConfig(w, headOverrides(c.json.models.checkpoint.unet_config_comfy), file.metadata));
}

export function freshClip(c: ConformanceCase): Promise<ClipTextEncoder> {
  return ClipTextEncoder.load(CHECKPOINT, { config: clipConfigFromHF(c.json.models.checkpoint.clip_config), compile: { threads: 1 } });
}

export function unetInputs(c: ConformanceCase) {
  return { x: c.input('x'), t: c.input('timesteps').data as Float32Array, ctx: c.input('context') };
}

/** Asserts the conformance rule for one expected tensor and returns the measured error. */
export function expectClose(c: ConformanceCase, name: string, actual: ArrayLike<number>): number {
  const r = compareTensor(name, actual, c.expected.readFloat32(name), c.tolerance(name));
  expect(r.maxError, `${name}: max|a-e| ${r.maxError} > ${r.limit}`).toBeLessThanOrEqual(r.limit);
  return r.maxError;
}

export function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
