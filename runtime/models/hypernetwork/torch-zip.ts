/**
 * A restricted reader for torch.save zip archives (the `.pt` files A1111 hypernetworks come in). The pickle
 * is interpreted by a small stack machine that knows only containers, numbers, strings and the few globals
 * a tensor state dict needs (OrderedDict, _rebuild_tensor_v2, the float storages); any other global is
 * refused, so nothing in a model file can run code.
 */
import { readFileSync } from 'node:fs';

export class TorchFileError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'TorchFileError';
  }
}

export interface TorchTensor {
  kind: 'tensor';
  dtype: 'F32' | 'F16' | 'BF16' | 'F64';
  shape: number[];
  data: Float32Array;
}

export type PickleValue = null | boolean | number | string | PickleValue[] | Map<PickleValue, PickleValue> | TorchTensor | { kind: 'storage'; dtype: TorchTensor['dtype']; key: string };

/** Stored (uncompressed) entries of a zip archive by name, via the central directory (torch writes sizes there). */
function zipEntries(file: string, buf: Buffer): Map<string, Buffer> {
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 65557); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new TorchFileError(file, 'not a zip archive (torch.save files from PyTorch >= 1.6 are zips; older pickles are not supported)');
  let count = buf.readUInt16LE(eocd + 10);
  let cd = buf.readUInt32LE(eocd + 16);
  if (cd === 0xffffffff || count === 0xffff) {
    const loc = eocd - 20;
    if (loc < 0 || buf.readUInt32LE(loc) !== 0x07064b50) throw new TorchFileError(file, 'zip64 archive without its locator');
    const z = Number(buf.readBigUInt64LE(loc + 8));
    count = Number(buf.readBigUInt64LE(z + 32));
    cd = Number(buf.readBigUInt64LE(z + 48));
  }
  const out = new Map<string, Buffer>();
  let p = cd;
  for (let n = 0; n < count; n++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new TorchFileError(file, 'corrupt zip central directory');
    const method = buf.readUInt16LE(p + 10);
    let size = buf.readUInt32LE(p + 20);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    let local = buf.readUInt32LE(p + 42);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
    // zip64 extra field: sizes / offset that overflowed 32 bits, in this order.
    let e = p + 46 + nameLen;
    const eEnd = e + extraLen;
    while (e + 4 <= eEnd) {
      const id = buf.readUInt16LE(e);
      const len = buf.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        if (buf.readUInt32LE(p + 24) === 0xffffffff) q += 8;
        if (size === 0xffffffff) {
          size = Number(buf.readBigUInt64LE(q));
          q += 8;
        }
        if (local === 0xffffffff) local = Number(buf.readBigUInt64LE(q));
      }
      e += 4 + len;
    }
    if (method !== 0) throw new TorchFileError(file, `zip entry "${name}" is compressed (method ${method}); torch.save stores entries uncompressed`);
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    out.set(name, buf.subarray(start, start + size));
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

const STORAGES: Record<string, TorchTensor['dtype']> = { FloatStorage: 'F32', HalfStorage: 'F16', BFloat16Storage: 'BF16', DoubleStorage: 'F64' };

type Global = { kind: 'global'; name: string };
type Stack = Array<PickleValue | Global | typeof MARK>;
const MARK = Symbol('mark');

function decodeStorage(raw: Buffer, dtype: TorchTensor['dtype']): Float32Array {
  const n = raw.length / { F32: 4, F16: 2, BF16: 2, F64: 8 }[dtype];
  const out = new Float32Array(n);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let i = 0; i < n; i++) {
    if (dtype === 'F32') out[i] = dv.getFloat32(i * 4, true);
    else if (dtype === 'F64') out[i] = dv.getFloat64(i * 8, true);
    else if (dtype === 'BF16') out[i] = new Float32Array(new Uint32Array([dv.getUint16(i * 2, true) << 16]).buffer)[0]!;
    else out[i] = halfToFloat(dv.getUint16(i * 2, true));
  }
  return out;
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** Loads a torch.save archive into plain values (dicts become Maps, tensors float32 copies). */
export function readTorchFile(path: string): PickleValue {
  const buf = readFileSync(path);
  const entries = zipEntries(path, buf);
  const pklName = [...entries.keys()].find((k) => k.endsWith('/data.pkl'));
  if (!pklName) throw new TorchFileError(path, 'no data.pkl in the archive');
  const root = pklName.slice(0, -'data.pkl'.length);
  const pkl = entries.get(pklName)!;
  const storages = new Map<string, Float32Array>();
  const storage = (key: string, dtype: TorchTensor['dtype']) => {
    let s = storages.get(key);
    if (!s) {
      const raw = entries.get(`${root}data/${key}`);
      if (!raw) throw new TorchFileError(path, `tensor data "${key}" missing from the archive`);
      s = decodeStorage(raw, dtype);
      storages.set(key, s);
    }
    return s;
  };
  const stack: Stack = [];
  const memo = new Map<number, PickleValue | Global>();
  let pos = 0;
  const u8 = () => pkl[pos++]!;
  const popMark = (): Stack => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) throw new TorchFileError(path, 'pickle: MARK missing');
    const items = stack.splice(i);
    items.shift();
    return items;
  };
  const top = () => stack[stack.length - 1];
  const call = (fn: PickleValue | Global | typeof MARK, args: PickleValue[]): PickleValue => {
    if (!fn || typeof fn !== 'object' || !('kind' in fn) || fn.kind !== 'global') throw new TorchFileError(path, 'pickle: call of a non-global');
    if (fn.name === 'collections OrderedDict') return new Map();
    if (fn.name === 'torch._utils _rebuild_tensor_v2') {
      const [st, offset, size, stride] = args as [{ kind: 'storage'; dtype: TorchTensor['dtype']; key: string }, number, number[], number[]];
      const data = storage(st.key, st.dtype);
      const n = size.reduce((a, b) => a * b, 1);
      const out = new Float32Array(n);
      const idx = new Array<number>(size.length).fill(0);
      for (let i = 0; i < n; i++) {
        let off = offset;
        for (let d = 0; d < size.length; d++) off += idx[d]! * stride[d]!;
        out[i] = data[off]!;
        for (let d = size.length - 1; d >= 0; d--) {
          if (++idx[d]! < size[d]!) break;
          idx[d] = 0;
        }
      }
      return { kind: 'tensor', dtype: st.dtype, shape: [...size], data: out };
    }
    throw new TorchFileError(path, `pickle: refusing to call "${fn.name}"`);
  };
  for (;;) {
    if (pos >= pkl.length) throw new TorchFileError(path, 'pickle: truncated');
    const op = u8();
    switch (op) {
      case 0x80: pos++; break; // PROTO
      case 0x95: pos += 8; break; // FRAME
      case 0x2e: { // STOP
        const v = stack.pop();
        if (v === MARK || (v && typeof v === 'object' && 'kind' in v && v.kind === 'global')) throw new TorchFileError(path, 'pickle: bad result');
        return v as PickleValue;
      }
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x28: stack.push(MARK); break;
      case 0x4e: stack.push(null); break;
      case 0x88: stack.push(true); break;
      case 0x89: stack.push(false); break;
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(pkl.readUInt16LE(pos)); pos += 2; break;
      case 0x4a: stack.push(pkl.readInt32LE(pos)); pos += 4; break;
      case 0x8a: { // LONG1
        const n = u8();
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(pkl[pos + i]!);
        if (n && pkl[pos + n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        pos += n;
        stack.push(Number(v));
        break;
      }
      case 0x47: stack.push(pkl.readDoubleBE(pos)); pos += 8; break; // BINFLOAT
      case 0x58: { const n = pkl.readUInt32LE(pos); pos += 4; stack.push(pkl.toString('utf8', pos, pos + n)); pos += n; break; }
      case 0x8c: { const n = u8(); stack.push(pkl.toString('utf8', pos, pos + n)); pos += n; break; }
      case 0x71: memo.set(u8(), top() as PickleValue); break; // BINPUT
      case 0x72: memo.set(pkl.readUInt32LE(pos), top() as PickleValue); pos += 4; break;
      case 0x94: memo.set(memo.size, top() as PickleValue); break; // MEMOIZE
      case 0x68: stack.push(memo.get(u8())!); break; // BINGET
      case 0x6a: stack.push(memo.get(pkl.readUInt32LE(pos))!); pos += 4; break;
      case 0x63: { // GLOBAL "module\nname\n"
        const end1 = pkl.indexOf(0x0a, pos);
        const end2 = pkl.indexOf(0x0a, end1 + 1);
        const name = `${pkl.toString('utf8', pos, end1)} ${pkl.toString('utf8', end1 + 1, end2)}`;
        pos = end2 + 1;
        stack.push(globalRef(path, name));
        break;
      }
      case 0x93: { const n = stack.pop() as string; const m = stack.pop() as string; stack.push(globalRef(path, `${m} ${n}`)); break; } // STACK_GLOBAL
      case 0x74: stack.push(popMark() as PickleValue[]); break; // TUPLE
      case 0x85: stack.push([stack.pop() as PickleValue]); break;
      case 0x86: { const b = stack.pop() as PickleValue; const a = stack.pop() as PickleValue; stack.push([a, b]); break; }
      case 0x87: { const c = stack.pop() as PickleValue; const b = stack.pop() as PickleValue; const a = stack.pop() as PickleValue; stack.push([a, b, c]); break; }
      case 0x52: { const args = stack.pop() as PickleValue[]; const fn = stack.pop()!; stack.push(call(fn, args)); break; } // REDUCE
      case 0x51: { // BINPERSID: ('storage', StorageType, key, location, numel)
        const pid = stack.pop() as unknown[];
        const t = pid[1] as Global;
        const dtype = STORAGES[t?.name?.split(' ')[1] ?? ''];
        if (pid[0] !== 'storage' || !dtype) throw new TorchFileError(path, 'pickle: unsupported persistent id (only float storages)');
        stack.push({ kind: 'storage', dtype, key: String(pid[2]) });
        break;
      }
      case 0x73: { const v = stack.pop() as PickleValue; const k = stack.pop() as PickleValue; (top() as Map<PickleValue, PickleValue>).set(k, v); break; } // SETITEM
      case 0x75: { // SETITEMS
        const items = popMark();
        const d = top() as Map<PickleValue, PickleValue>;
        for (let i = 0; i < items.length; i += 2) d.set(items[i] as PickleValue, items[i + 1] as PickleValue);
        break;
      }
      case 0x61: { const v = stack.pop() as PickleValue; (top() as PickleValue[]).push(v); break; } // APPEND
      case 0x65: { const items = popMark(); (top() as PickleValue[]).push(...(items as PickleValue[])); break; } // APPENDS
      default:
        throw new TorchFileError(path, `pickle: unsupported opcode 0x${op.toString(16)} at ${pos - 1}`);
    }
  }
}

const ALLOWED = new Set(['collections OrderedDict', 'torch._utils _rebuild_tensor_v2', ...Object.keys(STORAGES).map((s) => `torch ${s}`)]);

function globalRef(path: string, name: string): Global {
  if (!ALLOWED.has(name)) throw new TorchFileError(path, `refusing pickle global "${name}" (only tensor state dicts load)`);
  return { kind: 'global', name };
}
