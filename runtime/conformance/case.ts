import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { SafetensorsFile } from '../safetensors/reader.js';
import type { TensorData } from '../graph/session.js';

export interface Tolerance {
  atol: number;
  rtol: number;
}

export interface TensorResult {
  tensor: string;
  maxError: number;
  limit: number;
  pass: boolean;
  note?: string;
}

/** Tensors the case files mark as debugging aids: compared when we produce them, never required. */
export function isDebugTensor(name: string): boolean {
  return /(^|\/)(intermediate|step_x|weights)(\/|$)/.test(name) || name.includes('intermediate/') || name.startsWith('weights/');
}

/** pass iff max|a - e| <= atol + rtol * max|e| (the rule stated in the conformance README). */
export function compareTensor(tensor: string, actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance): TensorResult {
  if (actual.length !== expected.length) {
    return { tensor, maxError: Infinity, limit: 0, pass: false, note: `size ${actual.length} != expected ${expected.length}` };
  }
  let maxErr = 0;
  let maxE = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    const d = Math.abs(actual[i]! - e);
    if (!(d <= maxErr)) maxErr = Number.isNaN(d) ? Infinity : d;
    if (Math.abs(e) > maxE) maxE = Math.abs(e);
  }
  const limit = tol.atol + tol.rtol * maxE;
  return { tensor, maxError: maxErr, limit, pass: maxErr <= limit };
}

/** One conformance case folder: case.json, inputs.safetensors, expected.safetensors. */
export class ConformanceCase {
  readonly json: any;
  readonly inputs: SafetensorsFile | null;
  readonly expected: SafetensorsFile;
  readonly results: TensorResult[] = [];
  /** Expected tensors the case tells us to feed back in (e.g. recorded noise draws), not to reproduce. */
  readonly consumed = new Set<string>();

  constructor(readonly dir: string) {
    this.json = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8'));
    const inPath = join(dir, 'inputs.safetensors');
    this.inputs = existsSync(inPath) ? SafetensorsFile.open(inPath) : null;
    this.expected = SafetensorsFile.open(join(dir, 'expected.safetensors'));
  }

  get name(): string {
    return String(this.json.case ?? dirname(this.dir));
  }

  /** Resolves a model path given in case.json (relative to the case folder). */
  modelPath(rel: string): string {
    return resolve(this.dir, rel);
  }

  input(name: string): TensorData {
    if (!this.inputs?.has(name)) throw new Error(`${this.dir}: inputs.safetensors has no tensor "${name}"`);
    const info = this.inputs.info(name);
    const data = info.dtype === 'I32' || info.dtype === 'I64' ? Int32Array.from(this.inputs.readFloat32(name)) : this.inputs.readFloat32(name);
    return { data, dims: info.shape };
  }

  hasInput(name: string): boolean {
    return this.inputs?.has(name) ?? false;
  }

  expectedTensor(name: string): TensorData {
    const info = this.expected.info(name);
    return { data: this.expected.readFloat32(name), dims: info.shape };
  }

  hasExpected(name: string): boolean {
    return this.expected.has(name);
  }

  tolerance(name: string): Tolerance {
    const entry = this.json.outputs?.tensors?.[name] ?? this.json.expected?.tensors?.[name];
    const t = entry?.tolerance ?? this.json.tolerance?.default ?? { atol: 1e-4, rtol: 1e-4 };
    return { atol: Number(t.atol), rtol: Number(t.rtol) };
  }

  /** Compares our result against the expected tensor of that name and records the outcome. */
  check(name: string, actual: ArrayLike<number>, tol?: Tolerance): TensorResult {
    if (!this.expected.has(name)) {
      const r = { tensor: name, maxError: Infinity, limit: 0, pass: false, note: 'no such expected tensor' };
      this.results.push(r);
      return r;
    }
    const r = compareTensor(name, actual, this.expected.readFloat32(name), tol ?? this.tolerance(name));
    this.results.push(r);
    return r;
  }

  /** Expected tensors that are not debugging aids and that no check covered. */
  unchecked(): string[] {
    const done = new Set(this.results.map((r) => r.tensor));
    return this.expected.keys().filter((k) => !done.has(k) && !this.consumed.has(k) && !isDebugTensor(k));
  }
}
