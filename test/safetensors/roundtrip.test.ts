/** Writing and reading safetensors files: every dtype we write, metadata, layout, and atomic replacement. */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  SafetensorsFile,
  encodeSafetensors,
  float32ToBytes,
  writeSafetensors,
  writeSafetensorsStreaming,
  type TensorToWrite,
} from '../../runtime/safetensors/index.js';

const root = mkdtempSync(join(tmpdir(), 'resflow-st-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
/** A path in a folder of its own, so tests can assert the folder holds nothing else. */
const fresh = (name = 'f') => {
  const dir = join(root, `d${n++}`);
  mkdirSync(dir);
  return join(dir, `${name}.safetensors`);
};

const F32 = [0, -1.5, 3.25, 1e-30, -7e12, Infinity];
const TENSORS: Record<string, TensorToWrite> = {
  f32: { dtype: 'F32', shape: [2, 3], data: F32 },
  f32_typed: { dtype: 'F32', shape: [3], data: new Float32Array([1, 2, 3]) },
  f16: { dtype: 'F16', shape: [4], data: [1, -2, 65504, 2 ** -24] },
  bf16: { dtype: 'BF16', shape: [2, 2], data: [1, -2, 3.140625, -0] },
  i64: { dtype: 'I64', shape: [3], data: [-(2 ** 40) - 1, 0, 2 ** 53 - 1] },
  i32: { dtype: 'I32', shape: [2], data: [-2147483648, 2147483647] },
  u8: { dtype: 'U8', shape: [3], data: [0, 128, 255] },
  bool: { dtype: 'BOOL', shape: [2, 1], data: [1, 0] },
  scalar: { dtype: 'F32', shape: [], data: [42] },
  empty: { dtype: 'F16', shape: [0, 4], data: [] },
  raw_i16: { dtype: 'I16', shape: [2], data: new Uint8Array([0xff, 0xff, 0x02, 0x00]) },
};

function expectRoundTrip(f: SafetensorsFile) {
  expect(f.keys().sort()).toEqual(Object.keys(TENSORS).sort());
  const vals = (k: string) => Array.from(f.readFloat32(k));
  expect(vals('f32')).toEqual(F32.map(Math.fround));
  expect(vals('f32_typed')).toEqual([1, 2, 3]);
  expect(vals('f16')).toEqual([1, -2, 65504, 2 ** -24]);
  expect(vals('bf16')).toEqual([1, -2, 3.140625, -0]);
  expect(Object.is(vals('bf16')[3], -0)).toBe(true);
  const i64 = f.readBytes('i64');
  expect(Array.from(new BigInt64Array(i64.buffer.slice(i64.byteOffset, i64.byteOffset + i64.byteLength)))).toEqual([-(2n ** 40n) - 1n, 0n, 2n ** 53n - 1n]);
  expect(f.readNumbers('i64')).toEqual([-(2 ** 40) - 1, 0, 2 ** 53 - 1]);
  expect(f.readNumbers('i32')).toEqual([-2147483648, 2147483647]);
  expect(f.readNumbers('f32')).toEqual(F32.map(Math.fround));
  expect(f.readNumbers('u8')).toEqual([0, 128, 255]);
  expect(f.readNumbers('bool')).toEqual([1, 0]);
  expect(vals('scalar')).toEqual([42]);
  expect(vals('empty')).toEqual([]);
  expect(f.readNumbers('raw_i16')).toEqual([-1, 2]);
  for (const [k, t] of Object.entries(TENSORS)) {
    const info = f.info(k);
    expect([info.dtype, info.shape]).toEqual([t.dtype, t.shape]);
  }
  expect(Array.from(f.readBytes('f16'))).toEqual(Array.from(float32ToBytes([1, -2, 65504, 2 ** -24], 'F16')));
}

describe('round trips', () => {
  it('writeSafetensors -> SafetensorsFile.open, every dtype, with metadata', () => {
    const p = fresh();
    writeSafetensors(p, TENSORS, { format: 'pt', note: 'ünïcode ✓' });
    const f = SafetensorsFile.open(p);
    expectRoundTrip(f);
    expect(f.metadata).toEqual({ format: 'pt', note: 'ünïcode ✓' });
  });

  it('readNumbers refuses I64 values a number cannot hold exactly', () => {
    const p = fresh();
    writeSafetensors(p, { big: { dtype: 'I64', shape: [1], data: new Uint8Array(BigInt64Array.from([2n ** 60n]).buffer) } });
    expect(() => SafetensorsFile.open(p).readNumbers('big')).toThrow(/\[big\].*1152921504606846976/);
  });

  it('encodeSafetensors produces the same bytes as writeSafetensors', () => {
    const p = fresh();
    writeSafetensors(p, TENSORS, { a: 'b' });
    expect(Buffer.compare(readFileSync(p), encodeSafetensors(TENSORS, { a: 'b' }))).toBe(0);
  });

  it('lays out an 8-byte aligned data section, tensors back to back in insertion order', () => {
    const p = fresh();
    writeFileSync(p, encodeSafetensors(TENSORS));
    const f = SafetensorsFile.open(p);
    expect(f.dataStart % 8).toBe(0);
    const header = JSON.parse(readFileSync(p).subarray(8, f.dataStart).toString('utf8'));
    expect(header.__metadata__).toBeUndefined();
    expect(Object.keys(header)).toEqual(Object.keys(TENSORS));
    let off = 0;
    for (const k of Object.keys(TENSORS)) {
      expect(header[k].data_offsets).toEqual([off, off + f.info(k).byteLength]);
      off += f.info(k).byteLength;
    }
    expect(f.dataStart + off).toBe(f.fileSize);
    expect(f.metadata).toEqual({});
  });

  it('refuses data that does not match the shape', () => {
    expect(() => encodeSafetensors({ bad: { dtype: 'F32', shape: [2, 2], data: [1, 2, 3] } })).toThrow(/"bad".*12 bytes.*16/);
    expect(() => encodeSafetensors({ bad: { dtype: 'I8', shape: [1], data: [1] } })).toThrow(/cannot encode numbers as I8/);
  });

  it('streams large files tensor by tensor', () => {
    const p = fresh();
    const produced: string[] = [];
    writeSafetensorsStreaming(
      p,
      [
        { name: 'a', dtype: 'F32', shape: [2, 2], produce: () => (produced.push('a'), new Float32Array([1, 2, 3, 4])) },
        { name: 'b', dtype: 'F16', shape: [3], produce: () => (produced.push('b'), new Float32Array([0.5, -1, 2])) },
        { name: 'c', dtype: 'BF16', shape: [1], produce: () => (produced.push('c'), new Float32Array([-3])) },
      ],
      { kind: 'stream' },
    );
    expect(produced).toEqual(['a', 'b', 'c']);
    const f = SafetensorsFile.open(p);
    expect(f.metadata).toEqual({ kind: 'stream' });
    expect(Array.from(f.readFloat32('a'))).toEqual([1, 2, 3, 4]);
    expect(Array.from(f.readFloat32('b'))).toEqual([0.5, -1, 2]);
    expect(Array.from(f.readFloat32('c'))).toEqual([-3]);
    expect(f.dataStart % 8).toBe(0);
  });
});

describe('atomic writes', () => {
  it('leaves exactly the target file, no temp file', () => {
    const p = fresh('model');
    writeSafetensors(p, TENSORS);
    writeSafetensors(p, { x: { dtype: 'F32', shape: [1], data: [5] } }); // replace in place
    expect(readdirSync(join(p, '..'))).toEqual(['model.safetensors']);
    expect(SafetensorsFile.open(p).keys()).toEqual(['x']);
  });

  it('a failed write leaves the old file intact and no temp file', () => {
    const p = fresh('model');
    writeSafetensors(p, TENSORS);
    const before = readFileSync(p);
    expect(() => writeSafetensors(p, { bad: { dtype: 'F32', shape: [3], data: [1] } })).toThrow();
    expect(() =>
      writeSafetensorsStreaming(p, [{ name: 'bad', dtype: 'F32', shape: [3], produce: () => new Float32Array(1) }]),
    ).toThrow(/"bad" produced 1 values/);
    expect(() =>
      writeSafetensorsStreaming(p, [{ name: 'boom', dtype: 'F32', shape: [1], produce: () => { throw new Error('producer failed'); } }]),
    ).toThrow(/producer failed/);
    expect(readdirSync(join(p, '..'))).toEqual(['model.safetensors']);
    expect(Buffer.compare(readFileSync(p), before)).toBe(0);
  });
});
