import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { DTYPE_SIZES, float32ToBytes, type DType } from './dtypes.js';

export interface TensorToWrite {
  dtype: DType;
  shape: number[];
  /** Raw little-endian bytes, or float values that are encoded to `dtype` (F32/F16/BF16). */
  data: Uint8Array | Float32Array | number[];
}

function toBytes(name: string, t: TensorToWrite): Uint8Array {
  let bytes: Uint8Array;
  if (t.data instanceof Uint8Array) bytes = t.data;
  else if (t.dtype === 'F32' || t.dtype === 'F16' || t.dtype === 'BF16') bytes = float32ToBytes(t.data, t.dtype);
  else if (t.dtype === 'I32') bytes = new Uint8Array(Int32Array.from(t.data).buffer);
  else if (t.dtype === 'I64') bytes = new Uint8Array(BigInt64Array.from(Array.from(t.data, (v) => BigInt(Math.round(v)))).buffer);
  else if (t.dtype === 'U8' || t.dtype === 'BOOL') bytes = Uint8Array.from(t.data);
  else throw new Error(`safetensors writer: cannot encode numbers as ${t.dtype} for "${name}"`);
  const numel = t.shape.reduce((a, b) => a * b, 1);
  if (bytes.byteLength !== numel * DTYPE_SIZES[t.dtype]) {
    throw new Error(`safetensors writer: "${name}" has ${bytes.byteLength} bytes, shape [${t.shape}] of ${t.dtype} needs ${numel * DTYPE_SIZES[t.dtype]}`);
  }
  return bytes;
}

/** Encodes a complete safetensors file in memory (small files; tests, adapters). */
export function encodeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  const { headerBytes, blobs } = layout(tensors, metadata);
  parts.push(headerBytes, ...blobs.map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength)));
  return Buffer.concat(parts);
}

function layout(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>) {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  const blobs: Uint8Array[] = [];
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = toBytes(name, t);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + bytes.byteLength] };
    off += bytes.byteLength;
    blobs.push(bytes);
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so tensor data starts 8-byte aligned, as the reference implementation does.
  const pad = (8 - ((8 + Buffer.byteLength(json)) % 8)) % 8;
  json += ' '.repeat(pad);
  const jb = Buffer.from(json, 'utf8');
  const headerBytes = Buffer.alloc(8 + jb.byteLength);
  headerBytes.writeBigUInt64LE(BigInt(jb.byteLength), 0);
  jb.copy(headerBytes, 8);
  return { headerBytes, blobs };
}

/**
 * Writes a safetensors file atomically: data goes to a temp file beside the target, is fsynced, then renamed
 * over it, so a crash never leaves a half-written model where the user's file was.
 */
export function writeSafetensors(path: string, tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): void {
  const { headerBytes, blobs } = layout(tensors, metadata);
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const fd = openSync(tmp, 'w');
  try {
    writeAll(fd, headerBytes);
    for (const b of blobs) writeAll(fd, b);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

function writeAll(fd: number, b: Uint8Array): void {
  let done = 0;
  while (done < b.byteLength) done += writeSync(fd, b, done, b.byteLength - done);
}

export interface StreamedTensor {
  name: string;
  dtype: 'F32' | 'F16' | 'BF16';
  shape: number[];
  /** Called once, when the tensor's turn comes: only one tensor's data is in memory at a time. */
  produce: () => Float32Array;
}

/**
 * Writes a large safetensors file tensor by tensor (multi-GB synthetic checkpoints), atomically like
 * writeSafetensors.
 */
export function writeSafetensorsStreaming(path: string, tensors: StreamedTensor[], metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let off = 0;
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const jb = Buffer.from(json, 'utf8');
  const head = Buffer.alloc(8 + jb.byteLength);
  head.writeBigUInt64LE(BigInt(jb.byteLength), 0);
  jb.copy(head, 8);
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const fd = openSync(tmp, 'w');
  try {
    writeAll(fd, head);
    for (const t of tensors) {
      const data = t.produce();
      const expected = t.shape.reduce((a, b) => a * b, 1);
      if (data.length !== expected) throw new Error(`safetensors writer: "${t.name}" produced ${data.length} values, shape [${t.shape}] needs ${expected}`);
      writeAll(fd, float32ToBytes(data, t.dtype));
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}
