import { bytesToFloat32, DTYPE_SIZES, type DType } from '../safetensors/dtypes.js';
import type { TensorInfo } from '../safetensors/reader.js';
import { ForbiddenGlobalError, UnpicklingError, unpickle, type PickledObject, type SafeCallable } from './unpickle.js';
import { readZipDirectory, readZipMember, ZipError, type ZipEntry } from './zip.js';

/**
 * PyTorch's zip checkpoints (`.ckpt`, `.pt`, `.pth`, `.bin` from torch.save since 1.6): `<root>/data.pkl`
 * describes the objects, each tensor storage is a stored member `<root>/data/<key>`. The pickle is read by
 * the restricted unpickler; tensors become byte ranges into the zip, so loading stays lazy like safetensors.
 */

export class TorchCheckpointError extends Error {
  constructor(
    readonly file: string,
    message: string,
    readonly tensor?: string,
  ) {
    super(`${file}${tensor ? ` [${tensor}]` : ''}: ${message}`);
    this.name = 'TorchCheckpointError';
  }
}

const STORAGE_DTYPES: Record<string, DType> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

const TORCH_DTYPES: Record<string, DType> = {
  float32: 'F32',
  float: 'F32',
  float16: 'F16',
  half: 'F16',
  bfloat16: 'BF16',
  float64: 'F64',
  double: 'F64',
  int64: 'I64',
  long: 'I64',
  int32: 'I32',
  int: 'I32',
  int16: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};

interface StorageType {
  readonly storageDtype: DType;
}

interface StorageRef {
  readonly key: string;
  readonly dtype: DType;
}

interface TensorRef {
  readonly storage: StorageRef;
  readonly offset: number;
  readonly shape: number[];
  readonly stride: number[];
}

function isTensorRef(x: unknown): x is TensorRef {
  return typeof x === 'object' && x !== null && 'storage' in x && 'shape' in x && 'stride' in x;
}

const ints = (x: unknown, what: string): number[] => {
  if (!Array.isArray(x) || !x.every((v) => typeof v === 'number' && Number.isInteger(v) && v >= 0)) {
    throw new UnpicklingError(`tensor ${what} is not a tuple of non-negative integers`);
  }
  return x as number[];
};

function rebuildTensor(args: unknown[]): TensorRef {
  const [storage, offset, size, stride] = args;
  if (typeof storage !== 'object' || storage === null || !('key' in storage)) throw new UnpicklingError('tensor rebuild without a storage');
  if (typeof offset !== 'number') throw new UnpicklingError('tensor storage offset is not an integer');
  return { storage: storage as StorageRef, offset, shape: ints(size, 'size'), stride: ints(stride, 'stride') };
}

const plain = (global: string, call: (args: unknown[]) => unknown): SafeCallable => ({ global, call });
/** Classes that only carry training-time bookkeeping: kept as inert records, never instantiated. */
const inert = (global: string): SafeCallable => plain(global, (args): PickledObject => ({ global, args }));

function numpyScalar(args: unknown[]): unknown {
  const [dtype, bytes] = args as [{ args?: unknown[] } | undefined, unknown];
  const name = String(dtype?.args?.[0] ?? '');
  const raw = bytes instanceof Uint8Array ? bytes : typeof bytes === 'string' ? Uint8Array.from(Buffer.from(bytes, 'latin1')) : undefined;
  if (!raw) return null;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  if (name === 'f8' && raw.length === 8) return view.getFloat64(0, true);
  if (name === 'f4' && raw.length === 4) return view.getFloat32(0, true);
  if (name === 'i8' && raw.length === 8) return Number(view.getBigInt64(0, true));
  if (name === 'i4' && raw.length === 4) return view.getInt32(0, true);
  return null;
}

/** The names a weights file may use, the same set torch.load(weights_only=True) and ComfyUI's loader accept. */
function resolveGlobal(module: string, name: string): SafeCallable | undefined {
  const full = `${module}.${name}`;
  if (full === 'collections.OrderedDict') return plain(full, () => new Map());
  if (full === 'torch._utils._rebuild_tensor_v2' || full === 'torch._utils._rebuild_tensor') return plain(full, rebuildTensor);
  if (full === 'torch._utils._rebuild_parameter' || full === 'torch._utils._rebuild_parameter_with_state') return plain(full, (args) => args[0]);
  if (module === 'torch' && name in STORAGE_DTYPES) {
    const type: StorageType = { storageDtype: STORAGE_DTYPES[name]! };
    return { global: full, call: () => type, ...type } as SafeCallable & StorageType;
  }
  if (module === 'torch' && name in TORCH_DTYPES) return plain(full, () => name);
  if (full === '_codecs.encode') return plain(full, ([s]) => (typeof s === 'string' ? Uint8Array.from(Buffer.from(s, 'latin1')) : s));
  if (full === 'builtins.set' || full === '__builtin__.set') return plain(full, ([items]) => new Set(Array.isArray(items) ? items : []));
  if (full === 'numpy.core.multiarray.scalar' || full === 'numpy._core.multiarray.scalar') return plain(full, numpyScalar);
  if (full === 'numpy.dtype') return inert(full);
  if (full === 'pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint') return inert(full);
  return undefined;
}

function storageDtypeOf(x: unknown): DType | undefined {
  if (typeof x === 'object' && x !== null && 'storageDtype' in x) return (x as StorageType).storageDtype;
  if (typeof x === 'string' && x in TORCH_DTYPES) return TORCH_DTYPES[x];
  return undefined;
}

function persistentLoad(pid: unknown): StorageRef {
  // ('storage', storage type, key, location, numel)
  if (!Array.isArray(pid) || pid[0] !== 'storage') throw new UnpicklingError('unknown persistent reference (not a tensor storage)');
  const dtype = storageDtypeOf(pid[1]);
  if (!dtype) throw new UnpicklingError('tensor storage of an unsupported type');
  return { key: String(pid[2]), dtype };
}

/** Tensors by dotted name: a Lightning `state_dict` is unwrapped, nested dicts (embeddings) are flattened. */
function collectTensors(root: unknown): Map<string, TensorRef> {
  const out = new Map<string, TensorRef>();
  let top = root;
  if (top instanceof Map && top.get('state_dict') instanceof Map) top = top.get('state_dict');
  const walk = (value: unknown, prefix: string, depth: number) => {
    if (isTensorRef(value)) out.set(prefix, value);
    else if (value instanceof Map && depth < 8) {
      for (const [k, v] of value) if (typeof k === 'string' || typeof k === 'number') walk(v, prefix ? `${prefix}.${k}` : String(k), depth + 1);
    }
  };
  walk(top, '', 0);
  return out;
}

function isContiguous(shape: number[], stride: number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i]! !== 1 && stride[i] !== expected) return false;
    expected *= shape[i]!;
  }
  return true;
}

export interface TorchCheckpointTable {
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  fileSize: number;
}

interface OpenedArchive {
  entries: Map<string, ZipEntry>;
  /** The archive's top folder (`archive`, or the file's stem for newer torch versions). */
  root: string;
  /** The unpickled object graph; tensors are TensorRefs, not yet read. */
  object: unknown;
}

/** The archive's directory and its unpickled object, every refusal or damage worded with the file named. */
function openArchive(path: string): OpenedArchive {
  let entries: Map<string, ZipEntry>;
  try {
    entries = readZipDirectory(path);
  } catch (e) {
    if (e instanceof ZipError) throw new TorchCheckpointError(path, e.message.slice(path.length + 2));
    throw e;
  }
  const pkl = [...entries.values()].find((e) => /^[^/]+\/data\.pkl$/.test(e.name));
  if (!pkl) throw new TorchCheckpointError(path, 'zip archive without <name>/data.pkl: not a PyTorch checkpoint');
  const root = pkl.name.slice(0, -'/data.pkl'.length);
  const order = entries.get(`${root}/byteorder`);
  if (order && readZipMember(path, order).toString('latin1').trim() !== 'little') {
    throw new TorchCheckpointError(path, 'big-endian checkpoints are not supported');
  }
  let object: unknown;
  try {
    object = unpickle(readZipMember(path, pkl), { resolveGlobal, persistentLoad });
  } catch (e) {
    if (e instanceof ForbiddenGlobalError) {
      throw new TorchCheckpointError(
        path,
        `refused to load: its pickle asks for "${e.global}", which could run code. Only tensors, dicts, lists, tuples and plain values are allowed; no code from a model file is ever run. Convert the file to .safetensors if you trust it.`,
      );
    }
    if (e instanceof UnpicklingError) throw new TorchCheckpointError(path, `unreadable pickle: ${e.message}`);
    throw e;
  }
  return { entries, root, object };
}

/** Reads the tensor table of a PyTorch zip checkpoint without reading any tensor data. */
export function readTorchCheckpoint(path: string, fileSize: number): TorchCheckpointTable {
  const { entries, root, object } = openArchive(path);
  const tensors = new Map<string, TensorInfo>();
  for (const [name, t] of collectTensors(object)) {
    const entry = entries.get(`${root}/data/${t.storage.key}`);
    if (!entry) throw new TorchCheckpointError(path, `storage ${t.storage.key} is missing from the archive`, name);
    if (entry.method !== 0) throw new TorchCheckpointError(path, 'tensor data is compressed; re-save the file with torch.save or convert it to .safetensors', name);
    if (!isContiguous(t.shape, t.stride)) throw new TorchCheckpointError(path, 'tensor is stored non-contiguously; convert the file to .safetensors', name);
    const itemSize = DTYPE_SIZES[t.storage.dtype];
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const start = t.offset * itemSize;
    if (start + numel * itemSize > entry.size) throw new TorchCheckpointError(path, 'tensor extends past its storage (truncated?)', name);
    tensors.set(name, { name, dtype: t.storage.dtype, shape: t.shape, offset: entry.dataOffset + start, byteLength: numel * itemSize });
  }
  if (tensors.size === 0) throw new TorchCheckpointError(path, 'the checkpoint holds no tensors');
  return { tensors, metadata: { format: 'pt' }, fileSize };
}

/** A tensor read whole from a torch.save archive, as float32. */
export interface LoadedTensor {
  kind: 'tensor';
  dtype: DType;
  shape: number[];
  data: Float32Array;
}

export type TorchValue = null | boolean | number | string | TorchValue[] | Map<TorchValue, TorchValue> | LoadedTensor;

/**
 * A small torch.save file read whole into plain values (dicts become Maps, tensors float32 copies, strided views
 * gathered): for files that mix tensors with settings, such as A1111 hypernetworks. Same allow-list as above.
 */
export function readTorchObject(path: string): TorchValue {
  const { entries, root, object } = openArchive(path);
  const storages = new Map<string, Float32Array>();
  const storage = (ref: StorageRef): Float32Array => {
    let data = storages.get(ref.key);
    if (!data) {
      const entry = entries.get(`${root}/data/${ref.key}`);
      if (!entry) throw new TorchCheckpointError(path, `storage ${ref.key} is missing from the archive`);
      data = bytesToFloat32(readZipMember(path, entry), ref.dtype);
      storages.set(ref.key, data);
    }
    return data;
  };
  const gather = (t: TensorRef): LoadedTensor => {
    const data = storage(t.storage);
    const n = t.shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(n);
    const index = new Array<number>(t.shape.length).fill(0);
    for (let i = 0; i < n; i++) {
      let at = t.offset;
      for (let d = 0; d < t.shape.length; d++) at += index[d]! * t.stride[d]!;
      if (at >= data.length) throw new TorchCheckpointError(path, 'tensor extends past its storage (truncated?)');
      out[i] = data[at]!;
      for (let d = t.shape.length - 1; d >= 0 && ++index[d]! >= t.shape[d]!; d--) index[d] = 0;
    }
    return { kind: 'tensor', dtype: t.storage.dtype, shape: [...t.shape], data: out };
  };
  const plainValue = (v: unknown): TorchValue => {
    if (isTensorRef(v)) return gather(v);
    if (v instanceof Map) return new Map([...v].map(([k, x]) => [plainValue(k), plainValue(x)]));
    if (Array.isArray(v)) return v.map(plainValue);
    if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return v;
    if (typeof v === 'bigint') return Number(v);
    return null;
  };
  return plainValue(object);
}
