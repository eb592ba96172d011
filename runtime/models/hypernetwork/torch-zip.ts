/**
 * Reads a torch.save archive whole (the `.pt` files A1111 hypernetworks come in: a dict mixing tensors with
 * plain settings) through the shared zip reader and restricted unpickler. Only containers, numbers, strings
 * and tensor state dicts load; any other pickle global is refused, so nothing in a model file can run code.
 */
import { ForbiddenGlobalError, UnpicklingError, unpickle, type SafeCallable } from '../../torchfile/unpickle.js';
import { readZipDirectory, readZipMember, ZipError } from '../../torchfile/zip.js';

export class TorchFileError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'TorchFileError';
  }
}

type Dtype = 'F32' | 'F16' | 'BF16' | 'F64';

export interface TorchTensor {
  kind: 'tensor';
  dtype: Dtype;
  shape: number[];
  data: Float32Array;
}

export type PickleValue = null | boolean | number | string | PickleValue[] | Map<PickleValue, PickleValue> | TorchTensor;

const STORAGES: Record<string, Dtype> = { FloatStorage: 'F32', HalfStorage: 'F16', BFloat16Storage: 'BF16', DoubleStorage: 'F64' };
const BYTES: Record<Dtype, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

interface StorageRef {
  storage: true;
  dtype: Dtype;
  key: string;
}
interface PendingTensor {
  pending: true;
  storage: StorageRef;
  offset: number;
  shape: number[];
  stride: number[];
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

function decode(raw: Buffer, dtype: Dtype): Float32Array {
  const n = raw.length / BYTES[dtype];
  const out = new Float32Array(n);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const u32 = new Uint32Array(1);
  const f32 = new Float32Array(u32.buffer);
  for (let i = 0; i < n; i++) {
    if (dtype === 'F32') out[i] = dv.getFloat32(i * 4, true);
    else if (dtype === 'F64') out[i] = dv.getFloat64(i * 8, true);
    else if (dtype === 'F16') out[i] = halfToFloat(dv.getUint16(i * 2, true));
    else {
      u32[0] = dv.getUint16(i * 2, true) << 16;
      out[i] = f32[0]!;
    }
  }
  return out;
}

/** The names a tensor state dict needs, as plain data constructors. */
function resolveGlobal(module: string, name: string): SafeCallable | undefined {
  const full = `${module}.${name}`;
  if (full === 'collections.OrderedDict') return { global: full, call: () => new Map() };
  if (full === 'torch._utils._rebuild_tensor_v2') {
    return {
      global: full,
      call: ([storage, offset, shape, stride]): PendingTensor => ({ pending: true, storage: storage as StorageRef, offset: Number(offset), shape: shape as number[], stride: stride as number[] }),
    };
  }
  if (module === 'torch' && name in STORAGES) return { global: full, call: () => STORAGES[name] };
  return undefined;
}

/** Loads a torch.save archive into plain values (dicts become Maps, tensors float32 copies). */
export function readTorchFile(path: string): PickleValue {
  let entries;
  try {
    entries = readZipDirectory(path);
  } catch (e) {
    if (e instanceof ZipError) throw new TorchFileError(path, `not a torch.save zip archive (${e.message})`);
    throw e;
  }
  const pkl = [...entries.values()].find((e) => /^[^/]+\/data\.pkl$/.test(e.name));
  if (!pkl) throw new TorchFileError(path, 'no data.pkl in the archive');
  const root = pkl.name.slice(0, -'/data.pkl'.length);
  let object: unknown;
  try {
    object = unpickle(readZipMember(path, pkl), {
      resolveGlobal,
      persistentLoad: (pid) => {
        // ('storage', storage type, key, location, numel)
        if (!Array.isArray(pid) || pid[0] !== 'storage') throw new UnpicklingError('unknown persistent reference (not a tensor storage)');
        const t = pid[1] as SafeCallable | string;
        const dtype = typeof t === 'string' ? (t as Dtype) : (STORAGES[t.global.split('.').pop() ?? ''] as Dtype | undefined);
        if (!dtype) throw new UnpicklingError('tensor storage of an unsupported type');
        return { storage: true, dtype, key: String(pid[2]) } satisfies StorageRef;
      },
    });
  } catch (e) {
    if (e instanceof ForbiddenGlobalError) throw new TorchFileError(path, `refusing pickle global "${e.global}" (only tensor state dicts load; no code from a model file runs)`);
    if (e instanceof UnpicklingError) throw new TorchFileError(path, `unreadable pickle: ${e.message}`);
    throw e;
  }
  const storages = new Map<string, Float32Array>();
  const materialise = (v: unknown): PickleValue => {
    if (v instanceof Map) return new Map([...v].map(([k, x]) => [materialise(k), materialise(x)]));
    if (Array.isArray(v)) return v.map(materialise);
    if (v && typeof v === 'object' && 'pending' in v) {
      const t = v as PendingTensor;
      let data = storages.get(t.storage.key);
      if (!data) {
        const entry = entries.get(`${root}/data/${t.storage.key}`);
        if (!entry) throw new TorchFileError(path, `tensor data "${t.storage.key}" missing from the archive`);
        data = decode(readZipMember(path, entry), t.storage.dtype);
        storages.set(t.storage.key, data);
      }
      const n = t.shape.reduce((a, b) => a * b, 1);
      const out = new Float32Array(n);
      const idx = new Array<number>(t.shape.length).fill(0);
      for (let i = 0; i < n; i++) {
        let off = t.offset;
        for (let d = 0; d < t.shape.length; d++) off += idx[d]! * t.stride[d]!;
        out[i] = data[off]!;
        for (let d = t.shape.length - 1; d >= 0; d--) {
          if (++idx[d]! < t.shape[d]!) break;
          idx[d] = 0;
        }
      }
      return { kind: 'tensor', dtype: t.storage.dtype, shape: [...t.shape], data: out };
    }
    if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return v;
    if (typeof v === 'bigint') return Number(v);
    return null;
  };
  return materialise(object);
}
