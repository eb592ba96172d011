/** Loading and comparing the shared conformance vectors (see conformance/README.md in the shared data). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import { shared } from '../shared-data.js';

export const CONFORMANCE_DIR = shared('conformance');

export interface Tolerance {
  atol: number;
  rtol: number;
}

export interface CaseRun {
  name: string;
  sampler: string;
  scheduler: string;
  steps: number;
  cfg: number;
  denoise: number;
  seed: number;
  n_noise_calls: number;
}

export interface ConformanceCase {
  dir: string;
  json: {
    params: Record<string, unknown> & { runs?: CaseRun[] };
    outputs: { tensors: Record<string, { shape: number[]; tolerance?: Tolerance }> };
    tolerance: { default: Tolerance };
  };
  inputs: SafetensorsFile;
  expected: SafetensorsFile;
}

export function loadCase(name: string): ConformanceCase {
  const dir = shared('conformance', name);
  return {
    dir,
    json: JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as ConformanceCase['json'],
    inputs: SafetensorsFile.open(join(dir, 'inputs.safetensors')),
    expected: SafetensorsFile.open(join(dir, 'expected.safetensors')),
  };
}

export function toleranceOf(c: ConformanceCase, tensor: string): Tolerance {
  return c.json.outputs.tensors[tensor]?.tolerance ?? c.json.tolerance.default;
}

/** The README's rule: max|a - e| <= atol + rtol * max|e|. Returns a message on failure, null on pass. */
export function compareTensor(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance): string | null {
  if (actual.length !== expected.length) return `length ${actual.length} != expected ${expected.length}`;
  let maxDiff = 0;
  let maxAbs = 0;
  let worst = -1;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (!(d <= maxDiff)) {
      maxDiff = d;
      worst = i;
    }
    maxAbs = Math.max(maxAbs, Math.abs(expected[i]!));
  }
  const limit = tol.atol + tol.rtol * maxAbs;
  if (maxDiff <= limit) return null;
  return `max|a-e| = ${maxDiff} at ${worst} (a=${actual[worst]}, e=${expected[worst]}) > ${limit}`;
}

/** Slice [i] of a tensor with leading dimension n. */
export function row(data: Float32Array, n: number, i: number): Float32Array {
  const size = data.length / n;
  return data.subarray(i * size, (i + 1) * size);
}
