/** Corrupt files fail with a SafetensorsError naming the file (and the tensor when one is at fault); reads are lazy. */
import fs, { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_HEADER_BYTES, SafetensorsError, SafetensorsFile, encodeSafetensors } from '../../runtime/safetensors/index.js';

const root = mkdtempSync(join(tmpdir(), 'resflow-stc-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

function put(bytes: Uint8Array): string {
  const p = join(root, `c${n++}.safetensors`);
  writeFileSync(p, bytes);
  return p;
}

/** A file from a header object (or raw header text) and data, with an optional lying length field. */
function file(header: unknown, data = new Uint8Array(0), headerLen?: bigint): string {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLen ?? BigInt(json.byteLength));
  return put(Buffer.concat([len, json, data]));
}

function openError(path: string): SafetensorsError {
  try {
    SafetensorsFile.open(path);
  } catch (e) {
    expect(e).toBeInstanceOf(SafetensorsError);
    const err = e as SafetensorsError;
    expect(err.file).toBe(path);
    expect(err.message.startsWith(path)).toBe(true);
    return err;
  }
  throw new Error(`${path} opened without error`);
}

function expectTensorError(path: string, tensor: string, pattern: RegExp): void {
  const err = openError(path);
  expect(err.tensor).toBe(tensor);
  expect(err.message).toContain(`[${tensor}]`);
  expect(err.message).toMatch(pattern);
}

const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F16', shape: [2, 2], data_offsets: [8, 16] } };
const okData = new Uint8Array(16);

describe('corrupt files', () => {
  it('a valid hand-made file opens (the baseline the corruptions start from)', () => {
    const f = SafetensorsFile.open(file(ok, okData));
    expect(f.keys()).toEqual(['a', 'b']);
  });

  it('missing file', () => {
    expect(openError(join(root, 'nope.safetensors')).message).toMatch(/cannot open file \(ENOENT\)/);
  });

  it('file shorter than the length field', () => {
    expect(openError(put(new Uint8Array(5))).message).toMatch(/5 bytes, too short/);
    expect(openError(put(new Uint8Array(0))).message).toMatch(/0 bytes, too short/);
  });

  it('truncated file: header cut short', () => {
    const full = readFileSync(file(ok, okData));
    expect(openError(put(full.subarray(0, 20))).message).toMatch(/runs past the end of the 20-byte file/);
  });

  it('truncated file: data cut short names the first tensor that no longer fits', () => {
    const full = readFileSync(file(ok, okData));
    expectTensorError(put(full.subarray(0, full.byteLength - 3)), 'b', /\[8, 16\] run past the 13 data bytes/);
  });

  it('header length that lies: longer than the JSON', () => {
    const json = JSON.stringify(ok);
    expect(openError(file(ok, okData, BigInt(json.length + 4))).message).toMatch(/not valid JSON/);
  });

  it('header length that lies: shorter than the JSON', () => {
    const json = JSON.stringify(ok);
    expect(openError(file(ok, okData, BigInt(json.length - 1))).message).toMatch(/not valid JSON/);
  });

  it('a 2^60 header length is refused without trying to allocate it', () => {
    expect(openError(file(ok, okData, 2n ** 60n)).message).toMatch(new RegExp(`header length ${2n ** 60n} exceeds the ${MAX_HEADER_BYTES}-byte limit`));
    expect(openError(file(ok, okData, 2n ** 64n - 1n)).message).toMatch(/exceeds/);
  });

  it('invalid JSON, and JSON that is not an object', () => {
    expect(openError(file('{"a": {"dtype": "F32",', okData)).message).toMatch(/not valid JSON/);
    expect(openError(file('\xff\xfe garbage', okData)).message).toMatch(/not valid JSON/);
    expect(openError(file([1, 2], okData)).message).toMatch(/not an object/);
    expect(openError(file('null', okData)).message).toMatch(/not an object/);
  });

  it('__metadata__ that is not an object', () => {
    expect(openError(file({ ...ok, __metadata__: 'x' }, okData)).message).toMatch(/__metadata__ is not an object/);
  });

  it('tensor entry that is not an object', () => {
    expectTensorError(file({ ...ok, c: 3 }, okData), 'c', /not an object/);
  });

  it('out-of-range offsets', () => {
    expectTensorError(file({ ...ok, b: { ...ok.b, data_offsets: [8, 24] } }, okData), 'b', /\[8, 24\] run past the 16 data bytes/);
    expectTensorError(file({ ...ok, a: { ...ok.a, data_offsets: [8, 0] } }, okData), 'a', /end before they begin/);
    expectTensorError(file({ ...ok, a: { ...ok.a, data_offsets: [-8, 0] } }, okData), 'a', /invalid data_offsets/);
    expectTensorError(file({ ...ok, a: { ...ok.a, data_offsets: [0, 8.5] } }, okData), 'a', /invalid data_offsets/);
    expectTensorError(file({ ...ok, a: { ...ok.a, data_offsets: [0] } }, okData), 'a', /invalid data_offsets/);
    expectTensorError(file({ ...ok, a: { ...ok.a, data_offsets: [0, 2 ** 64] } }, okData), 'a', /invalid data_offsets/);
  });

  it('overlapping offsets name the later tensor and the one it overlaps', () => {
    const h = { a: ok.a, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } };
    expectTensorError(file(h, okData), 'b', /\[4, 12\] overlaps tensor "a" \[0, 8\]/);
    const same = { a: ok.a, b: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
    expect(openError(file(same, okData)).tensor).toMatch(/^[ab]$/);
  });

  it('unknown dtype', () => {
    expectTensorError(file({ ...ok, b: { ...ok.b, dtype: 'F8_E4M3' } }, okData), 'b', /unknown dtype "F8_E4M3"/);
    expectTensorError(file({ ...ok, b: { shape: [2], data_offsets: [8, 16] } }, okData), 'b', /unknown dtype undefined/);
  });

  it('shape/size mismatch and invalid shapes', () => {
    expectTensorError(file({ ...ok, b: { ...ok.b, shape: [3, 2] } }, okData), 'b', /shape \[3, 2\] of F16 needs 12 bytes but data_offsets span 8/);
    expectTensorError(file({ ...ok, a: { ...ok.a, dtype: 'F64' } }, okData), 'a', /needs 16 bytes but data_offsets span 8/);
    expectTensorError(file({ ...ok, a: { ...ok.a, shape: [-2] } }, okData), 'a', /invalid shape/);
    expectTensorError(file({ ...ok, a: { ...ok.a, shape: '2' } }, okData), 'a', /invalid shape/);
  });

  it('asking for a tensor that is not there', () => {
    const f = SafetensorsFile.open(file(ok, okData));
    expect(() => f.readBytes('zzz')).toThrow(SafetensorsError);
    expect(() => f.info('zzz')).toThrow(/\[zzz\]: no such tensor/);
  });

  it('a file truncated after opening fails the read, naming the tensor', () => {
    const p = file(ok, okData);
    const f = SafetensorsFile.open(p);
    writeFileSync(p, readFileSync(p).subarray(0, f.dataStart + 10));
    expect(() => f.readBytes('a')).not.toThrow();
    expect(() => f.readBytes('b')).toThrow(/\[b\]: file ended while reading tensor data/);
  });
});

describe('lazy reads', () => {
  const big = { dtype: 'F32' as const, shape: [256, 1024], data: new Float32Array(256 * 1024).fill(7) };
  const small = { dtype: 'F32' as const, shape: [3], data: [1, 2, 3] };

  it('reads one tensor although the bytes of the others are garbage', () => {
    const bytes = encodeSafetensors({ before: small, big, after: small });
    const p = put(bytes);
    const f = SafetensorsFile.open(p);
    const bigInfo = f.info('big');
    const corrupt = Buffer.from(bytes);
    corrupt.fill(0xff, bigInfo.offset, bigInfo.offset + bigInfo.byteLength); // NaN patterns everywhere
    writeFileSync(p, corrupt);
    const again = SafetensorsFile.open(p);
    expect(Array.from(again.readFloat32('after'))).toEqual([1, 2, 3]);
    expect(Array.from(again.readFloat32('before'))).toEqual([1, 2, 3]);
    expect(Number.isNaN(again.readFloat32('big')[12345])).toBe(true);
  });

  it('opening reads only the header, and a tensor read touches only its own bytes', () => {
    const p = put(encodeSafetensors({ big, small }));
    const reads: Array<[number, number]> = [];
    const original = fs.readSync;
    // The reader imports readSync by name: patch the builtin and re-sync its ESM exports to observe it.
    fs.readSync = ((fd: number, buf: NodeJS.ArrayBufferView, off: number, len: number, pos: number) => {
      reads.push([pos, len]);
      return original(fd, buf, off, len, pos);
    }) as typeof fs.readSync;
    syncBuiltinESMExports();
    try {
      const f = SafetensorsFile.open(p);
      expect(reads.reduce((s, [, len]) => s + len, 0)).toBe(f.dataStart);
      reads.length = 0;
      expect(Array.from(f.readFloat32('small'))).toEqual([1, 2, 3]);
      const info = f.info('small');
      expect(reads).toEqual([[info.offset, 12]]);
    } finally {
      fs.readSync = original;
      syncBuiltinESMExports();
    }
  });
});
