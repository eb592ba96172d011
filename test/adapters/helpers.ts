import { readFileSync } from 'node:fs';
import type { TensorSource } from '../../runtime/adapters/lora-format.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';

export { repoRoot, shared } from '../shared-data.js';

export const readJson = <T = any>(p: string): T => JSON.parse(readFileSync(p, 'utf8')) as T;

export interface Tolerance {
  atol: number;
  rtol: number;
}

/** The conformance pass rule: max|a - e| <= atol + rtol * max|e|. */
export function closeness(actual: Float32Array, expected: Float32Array, tol: Tolerance) {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} vs ${expected.length}`);
  let maxDiff = 0;
  let maxAbs = 0;
  for (let i = 0; i < expected.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(actual[i]! - expected[i]!));
    maxAbs = Math.max(maxAbs, Math.abs(expected[i]!));
  }
  const limit = tol.atol + tol.rtol * maxAbs;
  return { maxDiff, limit, pass: maxDiff <= limit };
}

export function caseTolerance(caseJson: any, tensor: string): Tolerance {
  return caseJson.outputs.tensors[tensor]?.tolerance ?? caseJson.tolerance.default;
}

/** Lazily reads base weights from a checkpoint, as the model loader would. */
export function lookupFrom(file: SafetensorsFile) {
  return (key: string) => (file.has(key) ? file.readFloat32(key) : undefined);
}

/** In-memory LoRA: tensors filled with a deterministic ramp unless data is given. */
export function memSource(tensors: Record<string, number[] | { shape: number[]; data: number[] }>): TensorSource {
  const entries = new Map(
    Object.entries(tensors).map(([k, v]) => {
      const shape = Array.isArray(v) ? v : v.shape;
      const n = shape.reduce((a, b) => a * b, 1);
      const data = Array.isArray(v) ? Float32Array.from({ length: n }, (_, i) => ((i % 13) - 6) / 16) : Float32Array.from(v.data);
      return [k, { shape, data }] as const;
    }),
  );
  return {
    keys: () => [...entries.keys()],
    info: (k) => entries.get(k)!,
    readFloat32: (k) => Float32Array.from(entries.get(k)!.data),
  };
}

