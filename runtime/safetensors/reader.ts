import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { readTorchCheckpoint } from '../torchfile/torch-checkpoint.js';
import { DTYPE_SIZES, bytesToFloat32, isDType, type DType } from './dtypes.js';

const ZIP_LOCAL_HEADER = 0x04034b50;

/** Headers above this are refused: real checkpoints have headers of a few hundred KiB. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute byte offset of the first element in the file. */
  offset: number;
  byteLength: number;
}

export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    message: string,
    readonly tensor?: string,
  ) {
    super(`${file}${tensor ? ` [${tensor}]` : ''}: ${message}`);
    this.name = 'SafetensorsError';
  }
}

/**
 * A safetensors file opened for lazy reads: only the header is parsed up front; each tensor is read from
 * its own byte range on demand, so multi-GB checkpoints never sit in memory whole. PyTorch zip checkpoints
 * open through the same class: their stored tensors are byte ranges of the archive too.
 */
export class SafetensorsFile {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  readonly dataStart: number;
  readonly fileSize: number;

  private constructor(
    readonly path: string,
    info: { tensors: Map<string, TensorInfo>; metadata: Record<string, string>; dataStart: number; fileSize: number },
  ) {
    this.tensors = info.tensors;
    this.metadata = info.metadata;
    this.dataStart = info.dataStart;
    this.fileSize = info.fileSize;
  }

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new SafetensorsError(path, `cannot open file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    try {
      return new SafetensorsFile(path, parseHeader(path, fd));
    } finally {
      closeSync(fd);
    }
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(this.path, 'no such tensor in file', name);
    return t;
  }

  /** Raw little-endian bytes of one tensor. */
  readBytes(name: string): Uint8Array {
    const t = this.info(name);
    const buf = Buffer.allocUnsafe(t.byteLength);
    const fd = openSync(this.path, 'r');
    try {
      let done = 0;
      while (done < t.byteLength) {
        const n = readSync(fd, buf, done, t.byteLength - done, t.offset + done);
        if (n <= 0) throw new SafetensorsError(this.path, 'file ended while reading tensor data (truncated?)', name);
        done += n;
      }
    } finally {
      closeSync(fd);
    }
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** One tensor as float32 (F16/BF16/ints converted). */
  readFloat32(name: string): Float32Array {
    const t = this.info(name);
    return bytesToFloat32(this.readBytes(name), t.dtype);
  }

  /**
   * Integer tensors (I32/I64/U8...) as plain numbers. Decoded straight from the bytes, not via float32,
   * which would round integers above 2^24. I64 values beyond 2^53 are refused rather than rounded.
   */
  readNumbers(name: string): number[] {
    const t = this.info(name);
    const bytes = this.readBytes(name);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const n = t.byteLength / DTYPE_SIZES[t.dtype];
    const get: ((i: number) => number) | undefined = {
      F64: (i: number) => view.getFloat64(i * 8, true),
      I64: (i: number) => {
        const v = view.getBigInt64(i * 8, true);
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
          throw new SafetensorsError(this.path, `I64 value ${v} is not exactly representable as a number`, name);
        }
        return Number(v);
      },
      I32: (i: number) => view.getInt32(i * 4, true),
      I16: (i: number) => view.getInt16(i * 2, true),
      I8: (i: number) => view.getInt8(i),
    }[t.dtype as string];
    if (!get) return Array.from(bytesToFloat32(bytes, t.dtype));
    return Array.from({ length: n }, (_, i) => get(i));
  }
}

function parseHeader(
  path: string,
  fd: number,
): { tensors: Map<string, TensorInfo>; metadata: Record<string, string>; dataStart: number; fileSize: number } {
  const fileSize = fstatSync(fd).size;
  if (fileSize < 8) throw new SafetensorsError(path, `file is ${fileSize} bytes, too short for a safetensors header`);
  const lenBuf = Buffer.alloc(8);
  readSync(fd, lenBuf, 0, 8, 0);
  // PyTorch checkpoints (.ckpt/.pt/.pth/.bin) are zip archives: same lazy view, through the restricted unpickler.
  if (lenBuf.readUInt32LE(0) === ZIP_LOCAL_HEADER) return { ...readTorchCheckpoint(path, fileSize), dataStart: 0 };
  const headerLen = lenBuf.readBigUInt64LE(0);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(path, `header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt or not a safetensors file)`);
  }
  const hl = Number(headerLen);
  if (8 + hl > fileSize) {
    throw new SafetensorsError(path, `header length ${hl} runs past the end of the ${fileSize}-byte file (truncated or corrupt)`);
  }
  const hb = Buffer.alloc(hl);
  readSync(fd, hb, 0, hl, 8);
  let header: unknown;
  try {
    header = JSON.parse(hb.toString('utf8'));
  } catch (e) {
    throw new SafetensorsError(path, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new SafetensorsError(path, 'header JSON is not an object');
  }
  const dataStart = 8 + hl;
  const dataLen = fileSize - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  const ranges: Array<[number, number, string]> = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null) throw new SafetensorsError(path, '__metadata__ is not an object');
      metadata = Object.fromEntries(Object.entries(raw as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
      continue;
    }
    if (typeof raw !== 'object' || raw === null) throw new SafetensorsError(path, 'tensor entry is not an object', name);
    const { dtype, shape, data_offsets } = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!isDType(dtype)) throw new SafetensorsError(path, `unknown dtype ${JSON.stringify(dtype)}`, name);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(path, `invalid shape ${JSON.stringify(shape)}`, name);
    }
    if (
      !Array.isArray(data_offsets) ||
      data_offsets.length !== 2 ||
      !data_offsets.every((d) => Number.isSafeInteger(d) && d >= 0)
    ) {
      throw new SafetensorsError(path, `invalid data_offsets ${JSON.stringify(data_offsets)}`, name);
    }
    const [begin, end] = data_offsets as [number, number];
    if (end < begin) throw new SafetensorsError(path, `data_offsets [${begin}, ${end}] end before they begin`, name);
    if (end > dataLen) {
      throw new SafetensorsError(path, `data_offsets [${begin}, ${end}] run past the ${dataLen} data bytes in the file (truncated?)`, name);
    }
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    const expected = numel * DTYPE_SIZES[dtype];
    if (expected !== end - begin) {
      throw new SafetensorsError(
        path,
        `shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${expected} bytes but data_offsets span ${end - begin}`,
        name,
      );
    }
    tensors.set(name, { name, dtype, shape: shape as number[], offset: dataStart + begin, byteLength: end - begin });
    if (end > begin) ranges.push([begin, end, name]);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) {
    const prev = ranges[i - 1]!;
    const cur = ranges[i]!;
    if (cur[0] < prev[1]) {
      throw new SafetensorsError(path, `data range [${cur[0]}, ${cur[1]}] overlaps tensor "${prev[2]}" [${prev[0]}, ${prev[1]}]`, cur[2]);
    }
  }
  return { tensors, metadata, dataStart, fileSize };
}
