import { statSync } from 'node:fs';
import { fileFingerprint } from '../safetensors/fingerprint.js';
import type { GraphBuilder, T } from '../graph/builder.js';
import type { SafetensorsFile } from '../safetensors/reader.js';

export class ModelKeyError extends Error {
  constructor(
    readonly file: string,
    readonly key: string,
    message: string,
  ) {
    super(`${file}: ${message} (key "${key}")`);
    this.name = 'ModelKeyError';
  }
}

/**
 * A view of the tensors under one key prefix of a checkpoint (e.g. "model.diffusion_model."). Binds them into
 * a graph as lazily loaded weights, checking shapes so a mismatched file fails with the key named.
 */
export class WeightSet {
  private readonly identity: string;

  constructor(
    readonly file: SafetensorsFile,
    readonly prefix: string,
    /** What identifies the content when `file` is not a plain file on disk (e.g. a merge of two models). */
    identity?: string,
  ) {
    if (identity !== undefined) {
      this.identity = identity;
      return;
    }
    const st = statSync(file.path);
    // The compiled-model cache keys on it: path, size and mtime, plus a content fingerprint (header + sampled
    // data) so a same-size rewrite that keeps the mtime never reuses stale compiled weights.
    this.identity = `${file.path}:${st.size}:${st.mtimeMs}:${fileFingerprint(file.path)}`;
  }

  /** The content identity compiled-model caches key on. */
  get contentId(): string {
    return this.identity;
  }

  has(name: string): boolean {
    return this.file.has(this.prefix + name);
  }

  shape(name: string): number[] {
    const key = this.prefix + name;
    if (!this.file.has(key)) throw new ModelKeyError(this.file.path, key, 'missing tensor');
    return this.file.info(key).shape;
  }

  /** Names (without prefix) of all tensors under the prefix. */
  names(): string[] {
    return this.file.keys().filter((k) => k.startsWith(this.prefix)).map((k) => k.slice(this.prefix.length));
  }

  read(name: string): Float32Array {
    this.shape(name);
    return this.file.readFloat32(this.prefix + name);
  }

  /** Binds a tensor as a graph weight; `expected` dims (null = any) are checked against the file. */
  bind(g: GraphBuilder, name: string, expected?: Array<number | null>, opts: { overridable?: boolean } = {}): T {
    const key = this.prefix + name;
    const shape = this.shape(name);
    if (expected && (expected.length !== shape.length || expected.some((d, i) => d !== null && d !== shape[i]))) {
      throw new ModelKeyError(this.file.path, key, `shape [${shape.join(', ')}] does not match the expected [${expected.map((d) => d ?? '?').join(', ')}]`);
    }
    const file = this.file;
    return g.weight(key, shape, { key: `${this.identity}#${key}`, load: () => file.readFloat32(key) }, opts);
  }

  /** Like bind, but returns undefined when the tensor is absent (optional biases). */
  bindOptional(g: GraphBuilder, name: string, expected?: Array<number | null>): T | undefined {
    return this.has(name) ? this.bind(g, name, expected) : undefined;
  }
}
