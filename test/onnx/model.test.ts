/**
 * Our hand-written ModelProto encoder, decoded by an independent implementation (onnx-proto, generated from
 * onnx.proto by protobufjs) to check that every field lands where the ONNX schema says.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onnx } from 'onnx-proto';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { GraphBuilder, applyLayout, compileGraph, graphHash, lowerToOnnx } from '../../runtime/graph/index.js';
import { ProtoWriter } from '../../runtime/onnx/protobuf.js';
import { encodeModel, MAX_PROTO_BYTES, OnnxType, type OnnxModel, type OnnxNode, type OnnxTensor } from '../../runtime/onnx/model.js';

/** protobufjs returns int64 fields as Long objects (or numbers, depending on what is installed). */
const num = (v: unknown): number => (typeof v === 'number' ? v : Number(String(v)));
const decode = (m: OnnxModel) => onnx.ModelProto.decode(encodeModel(m));
const text = (b: Uint8Array | null | undefined) => new TextDecoder().decode(b ?? new Uint8Array());
// decode() builds class instances whose repeated fields are always arrays; the I* interfaces say "maybe null".
const graphOf = (m: onnx.ModelProto) => m.graph as onnx.GraphProto;
const nodesOf = (m: onnx.ModelProto) => graphOf(m).node as onnx.NodeProto[];
const initsOf = (m: onnx.ModelProto) => graphOf(m).initializer as onnx.TensorProto[];

function model(over: Partial<OnnxModel['graph']> = {}, rest: Partial<OnnxModel> = {}): OnnxModel {
  return {
    opset: 21,
    ...rest,
    graph: {
      name: 'g',
      nodes: [{ opType: 'Relu', inputs: ['x'], outputs: ['y'] }],
      inputs: [{ name: 'x', elemType: OnnxType.FLOAT, shape: ['B', 3, null] }],
      outputs: [{ name: 'y', elemType: OnnxType.FLOAT, shape: ['B', 3, null] }],
      initializers: [],
      ...over,
    },
  };
}

const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

describe('ModelProto header', () => {
  it.each([
    [17, 8],
    [18, 8],
    [19, 9],
    [20, 9],
    [21, 10],
  ])('opset %i imports the default domain and com.microsoft, IR version %i', (opset, ir) => {
    const m = decode(model({}, { opset, extraOpsets: { 'com.microsoft': 1 }, metadata: { hash: 'abc' } }));
    expect(num(m.irVersion)).toBe(ir);
    expect(m.producerName).toBe('resflow');
    expect(m.opsetImport.map((o) => [o.domain, num(o.version)])).toEqual([
      ['', opset],
      ['com.microsoft', 1],
    ]);
    expect(m.metadataProps.map((p) => [p.key, p.value])).toEqual([['hash', 'abc']]);
  });

  it('refuses opsets outside 17..21', () => {
    expect(() => encodeModel(model({}, { opset: 16 }))).toThrow(/opset 16/);
    expect(() => encodeModel(model({}, { opset: 22 }))).toThrow(/opset 22/);
  });

  it('the lowering imports com.microsoft and uses it for fused ops', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['B', 'S', 8]);
    g.output('y', g.attention(g.silu(x), x, x, 2));
    const m = onnx.ModelProto.decode(encodeModel(lowerToOnnx(g.graph).model));
    expect(m.opsetImport.map((o) => [o.domain, num(o.version)])).toEqual([['', 21], ['com.microsoft', 1]]);
    const ops = nodesOf(m).map((n) => `${n.domain}:${n.opType}`);
    expect(ops).toContain('com.microsoft:MultiHeadAttention');
    expect(ops).toContain('com.microsoft:QuickGelu');
  });
});

describe('value infos', () => {
  it('writes fixed dims as dim_value, symbols as dim_param, and derived dims as unknown', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['B', 4, 'H', 'W']);
    const ids = g.input('ids', 'int64', ['B', 'S']);
    const w = g.weight('w', [4, 4, 3, 3], { key: 'vi-w', load: () => new Float32Array(144) });
    g.output('down', g.conv2d(x, w, undefined, { stride: 2, padding: 1 }));
    g.output('ids_out', g.cast(ids, 'float32'));
    const m = onnx.ModelProto.decode(encodeModel(lowerToOnnx(g.graph).model));
    const dims = (v: onnx.IValueInfoProto) =>
      v.type!.tensorType!.shape!.dim!.map((d) => (d.dimParam ? d.dimParam : d.dimValue != null && num(d.dimValue) !== 0 ? num(d.dimValue) : null));
    const [xin, idsIn] = graphOf(m).input;
    expect(xin!.name).toBe('x');
    expect(xin!.type!.tensorType!.elemType).toBe(OnnxType.FLOAT);
    expect(dims(xin!)).toEqual(['B', 4, 'H', 'W']);
    expect(idsIn!.type!.tensorType!.elemType).toBe(OnnxType.INT64);
    expect(dims(idsIn!)).toEqual(['B', 'S']);
    const down = graphOf(m).output.find((o) => o.name === 'down')!;
    expect(dims(down)).toEqual(['B', 4, null, null]);
    // The unknown dims must carry neither field, not an empty dim_param.
    for (const d of down.type!.tensorType!.shape!.dim!.slice(2)) {
      expect((d as onnx.TensorShapeProto.Dimension).value).toBeUndefined();
    }
  });
});

describe('attributes', () => {
  const tensor: OnnxTensor = { name: 'tv', dataType: OnnxType.FLOAT, dims: [2], raw: new Uint8Array(new Float32Array([1.5, -2]).buffer) };
  const node: OnnxNode = {
    opType: 'Custom',
    domain: 'com.microsoft',
    name: 'n0',
    inputs: ['x', ''],
    outputs: ['y'],
    attributes: {
      small: { i: 3 },
      negative: { i: -7 },
      big: { i: 2 ** 40 + 1 },
      real: { f: 0.1 },
      inf: { f: -Infinity },
      str: { s: 'asymmetric ⇒ floor' },
      list: { ints: [1, -1, 0, 2 ** 33] },
      empty: { ints: [] },
      reals: { floats: [0.5, -1.25, 3e-8] },
      tensor: { t: tensor },
    },
  };

  it('encodes every kind with its AttributeType and value', () => {
    const n = nodesOf(decode(model({ nodes: [node] })))[0]!;
    expect([n.opType, n.domain, n.name, n.input, n.output]).toEqual(['Custom', 'com.microsoft', 'n0', ['x', ''], ['y']]);
    const by = Object.fromEntries(n.attribute.map((a) => [a.name, a]));
    const T = onnx.AttributeProto.AttributeType;
    expect(n.attribute.map((a) => a.name)).toEqual(Object.keys(node.attributes!));
    expect([by.small!.type, num(by.small!.i)]).toEqual([T.INT, 3]);
    expect([by.negative!.type, num(by.negative!.i)]).toEqual([T.INT, -7]);
    expect([by.big!.type, num(by.big!.i)]).toEqual([T.INT, 2 ** 40 + 1]);
    expect(by.real!.type).toBe(T.FLOAT);
    expect(by.real!.f).toBe(Math.fround(0.1));
    expect(by.inf!.f).toBe(-Infinity);
    expect([by.str!.type, text(by.str!.s)]).toEqual([T.STRING, 'asymmetric ⇒ floor']);
    expect([by.list!.type, by.list!.ints.map(num)]).toEqual([T.INTS, [1, -1, 0, 2 ** 33]]);
    expect([by.empty!.type, by.empty!.ints]).toEqual([T.INTS, []]);
    expect(by.reals!.type).toBe(T.FLOATS);
    expect(by.reals!.floats).toEqual([0.5, -1.25, Math.fround(3e-8)]);
    expect(by.tensor!.type).toBe(T.TENSOR);
    const t = by.tensor!.t!;
    expect([t.name, t.dataType, t.dims.map(num)]).toEqual(['tv', OnnxType.FLOAT, [2]]);
    expect(Array.from(new Float32Array(new Uint8Array(t.rawData!).buffer))).toEqual([1.5, -2]);
  });
});

describe('initializers', () => {
  it('inline tensors carry raw_data, dims and type; scalars have no dims', () => {
    const inits: OnnxTensor[] = [
      { name: 'i64', dataType: OnnxType.INT64, dims: [3], raw: new Uint8Array(BigInt64Array.from([1n, -2n, 3n]).buffer) },
      { name: 'scalar', dataType: OnnxType.FLOAT, dims: [], raw: new Uint8Array(new Float32Array([4]).buffer) },
      { name: 'empty', dataType: OnnxType.FLOAT, dims: [0, 5], raw: new Uint8Array(0) },
    ];
    const got = initsOf(decode(model({ initializers: inits })));
    expect(got.map((t) => [t.name, t.dataType, t.dims.map(num), t.dataLocation ?? 0])).toEqual([
      ['i64', OnnxType.INT64, [3], 0],
      ['scalar', OnnxType.FLOAT, [], 0],
      ['empty', OnnxType.FLOAT, [0, 5], 0],
    ]);
    expect(Array.from(new BigInt64Array(new Uint8Array(got[0]!.rawData!).buffer))).toEqual([1n, -2n, 3n]);
    expect(got[2]!.externalData).toEqual([]);
  });

  it('external tensors carry location/offset/length entries and data_location EXTERNAL, beyond 2 GiB total', () => {
    const GiB = 2 ** 30;
    // Five 1-GiB weights: 5 GiB of external data referenced by a model of a few hundred bytes.
    const inits: OnnxTensor[] = Array.from({ length: 5 }, (_, i) => ({
      name: `w${i}`,
      dataType: OnnxType.FLOAT,
      dims: [2 ** 14, 2 ** 14],
      external: { location: 'weights.bin', offset: i * GiB, length: GiB },
    }));
    const bytes = encodeModel(model({ initializers: inits }));
    expect(bytes.byteLength).toBeLessThan(4096);
    const got = initsOf(onnx.ModelProto.decode(bytes));
    got.forEach((t, i) => {
      expect(t.dataLocation).toBe(onnx.TensorProto.DataLocation.EXTERNAL);
      expect(t.rawData?.length ?? 0).toBe(0);
      expect(t.dims.map(num)).toEqual([2 ** 14, 2 ** 14]);
      expect(t.externalData.map((e) => [e.key, e.value])).toEqual([
        ['location', 'weights.bin'],
        ['offset', String(i * GiB)],
        ['length', String(GiB)],
      ]);
    });
    expect(Number(got[4]!.externalData[1]!.value) + GiB).toBe(5 * GiB);
  });

  it('refuses a model whose inline data reaches 2 GiB, before allocating it', () => {
    // 2049 initializers sharing one 1-MiB buffer: the encoder references chunks, so only 1 MiB is allocated
    // unless the guard comes too late and concatenates them.
    const MiB = new Uint8Array(2 ** 20);
    const inits: OnnxTensor[] = Array.from({ length: 2049 }, (_, i) => ({ name: `w${i}`, dataType: OnnxType.FLOAT, dims: [2 ** 18], raw: MiB }));
    expect(2049 * 2 ** 20).toBeGreaterThan(MAX_PROTO_BYTES);
    // finish() is where the chunks are concatenated: a guard placed after it would allocate 2 GiB first.
    const finish = vi.spyOn(ProtoWriter.prototype, 'finish').mockImplementation(() => {
      throw new Error('finish() reached: the model would have been allocated');
    });
    try {
      expect(() => encodeModel(model({ initializers: inits }))).toThrow(/2 GiB/);
      expect(finish).not.toHaveBeenCalled();
    } finally {
      finish.mockRestore();
    }
  });

  it('encodes graphs with very many nodes', () => {
    const nodes: OnnxNode[] = Array.from({ length: 60_000 }, (_, i) => ({ opType: 'Relu', inputs: [i ? `t${i - 1}` : 'x'], outputs: [i === 59_999 ? 'y' : `t${i}`] }));
    const m = decode(model({ nodes }));
    expect(nodesOf(m)).toHaveLength(60_000);
    expect(nodesOf(m)[59_999]!.output).toEqual(['y']);
  });
});

describe('models written by compileGraph with external data', () => {
  it('point at page-aligned ranges of weights.bin that hold the weights in their ONNX layout', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'resflow-onnx-'));
    tmpDirs.push(cacheDir);
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['B', 'S', 3]);
    const vals = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => i * k + 1);
    const lw = g.weight('lin.weight', [5, 3], { key: 'ext-lin-w', load: () => vals(15, 0.5) });
    const lb = g.weight('lin.bias', [5], { key: 'ext-lin-b', load: () => vals(5, -1) });
    const gw = g.weight('norm.weight', [5], { key: 'ext-gn-w', load: () => vals(5, 2) });
    const h = g.transpose(g.linear(x, lw, lb), [0, 2, 1]);
    g.output('y', g.groupNorm(h, 5, gw, lb));
    const opts = { inlineLimitBytes: 0, cacheDir };
    await compileGraph(g.graph, opts);
    const dir = join(cacheDir, 'onnx', graphHash(g.graph));
    const m = onnx.ModelProto.decode(readFileSync(join(dir, 'model.onnx')));
    const bin = readFileSync(join(dir, 'weights.bin'));
    expect(statSync(join(dir, 'weights.bin')).size).toBe(bin.byteLength);
    const ext = initsOf(m).filter((t) => t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL);
    expect(ext.map((t) => t.name).sort()).toEqual(['lin.bias', 'lin.weight', 'norm.weight']);
    const lowered = lowerToOnnx(g.graph);
    for (const t of ext) {
      const kv = Object.fromEntries(t.externalData.map((e) => [e.key, e.value]));
      const offset = Number(kv.offset);
      const length = Number(kv.length);
      expect(kv.location).toBe('weights.bin');
      expect(offset % 4096).toBe(0);
      expect(length).toBe(4 * t.dims.map(num).reduce((a, b) => a * b, 1));
      expect(offset + length).toBeLessThanOrEqual(bin.byteLength);
      const planned = lowered.weights.find((w) => w.onnxName === t.name)!;
      expect(t.dims.map(num)).toEqual(planned.layout.dims);
      const src = g.graph.weights.find((w) => w.name === t.name)!.source.load();
      const stored = new Float32Array(bin.buffer.slice(bin.byteOffset + offset, bin.byteOffset + offset + length));
      expect(Array.from(stored)).toEqual(Array.from(applyLayout(src, planned.layout)));
    }
    // The linear weight is stored pre-transposed, [in, out].
    expect(ext.find((t) => t.name === 'lin.weight')!.dims.map(num)).toEqual([3, 5]);
  });
});
