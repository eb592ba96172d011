/** Test helpers that write PyTorch-style zip archives (torch.save layout) without PyTorch. */
import { SafetensorsFile } from '../../runtime/safetensors/index.js';

/** A zip with stored entries, as torch.save writes them (enough for the reader; CRCs are not checked). */
export function storedZip(entries: Record<string, Buffer>): Buffer {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let off = 0;
  for (const [name, data] of Object.entries(entries)) {
    const nb = Buffer.from(name);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt32LE(data.length, 18);
    lh.writeUInt32LE(data.length, 22);
    lh.writeUInt16LE(nb.length, 26);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt32LE(data.length, 20);
    ch.writeUInt32LE(data.length, 24);
    ch.writeUInt16LE(nb.length, 28);
    ch.writeUInt32LE(off, 42);
    locals.push(lh, nb, data);
    central.push(ch, nb);
    off += 30 + nb.length + data.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Object.keys(entries).length, 8);
  end.writeUInt16LE(Object.keys(entries).length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(off, 16);
  return Buffer.concat([...locals, cd, end]);
}

/** PROTO 2; GLOBAL module\\nname; BINUNICODE arg; TUPLE1; REDUCE; STOP: calling `module.name(arg)` on load. */
export function callingPickle(module: string, name: string, arg: string): Buffer {
  const a = Buffer.from(arg);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(a.length);
  return Buffer.concat([Buffer.from([0x80, 2, 0x63]), Buffer.from(`${module}\n${name}\n`), Buffer.from([0x58]), len, a, Buffer.from([0x85, 0x52, 0x2e])]);
}


const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
};
const str = (s: string) => Buffer.concat([Buffer.from([0x58]), u32(Buffer.byteLength(s)), Buffer.from(s)]);
const int = (v: number) => Buffer.concat([Buffer.from([0x4a]), (() => { const b = Buffer.alloc(4); b.writeInt32LE(v); return b; })()]);
const glob = (m: string, n: string) => Buffer.from(`c${m}\n${n}\n`, 'latin1');
const tuple = (items: Buffer[]) => Buffer.concat([Buffer.from([0x28]), ...items, Buffer.from([0x74])]);

/** A torch.save-style archive (an OrderedDict of float32 tensors) holding every tensor of a safetensors file. */
export function safetensorsToTorchZip(src: string): Buffer {
  const file = SafetensorsFile.open(src);
  const parts: Buffer[] = [Buffer.from([0x80, 2, 0x7d, 0x28])];
  const data: Record<string, Buffer> = {};
  file.keys().forEach((key, i) => {
    const shape = file.info(key).shape;
    const values = file.readFloat32(key);
    data[`archive/data/${i}`] = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
    const stride = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
    parts.push(
      str(key),
      glob('torch._utils', '_rebuild_tensor_v2'),
      tuple([
        tuple([str('storage'), glob('torch', 'FloatStorage'), str(String(i)), str('cpu'), int(values.length)]),
        Buffer.from([0x51]),
        int(0),
        tuple(shape.map(int)),
        tuple(stride.map(int)),
        Buffer.from([0x89]),
        glob('collections', 'OrderedDict'),
        Buffer.from([0x29, 0x52]),
      ]),
      Buffer.from([0x52]),
    );
  });
  parts.push(Buffer.from([0x75, 0x2e]));
  return storedZip({ 'archive/data.pkl': Buffer.concat(parts), 'archive/version': Buffer.from('3\n'), ...data });
}
