import { ProtoWriter } from './protobuf.js';

/** ONNX TensorProto.DataType codes for the element types we emit. */
export const OnnxType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  BFLOAT16: 16,
} as const;
export type OnnxTypeCode = (typeof OnnxType)[keyof typeof OnnxType];

export interface OnnxExternalRef {
  /** Path relative to the model file's folder (ORT refuses absolute or escaping paths). */
  location: string;
  offset: number;
  length: number;
}

export interface OnnxTensor {
  name: string;
  dataType: OnnxTypeCode;
  dims: number[];
  raw?: Uint8Array;
  external?: OnnxExternalRef;
}

export type OnnxAttr =
  | { i: number }
  | { f: number }
  | { s: string }
  | { ints: number[] }
  | { floats: number[] }
  | { t: OnnxTensor }
  | { g: OnnxGraph }; // a subgraph (If branches)

export interface OnnxNode {
  opType: string;
  domain?: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  attributes?: Record<string, OnnxAttr>;
}

/** A dim is a fixed size, a symbolic name (dim_param), or unknown (null). */
export type OnnxDim = number | string | null;

export interface OnnxValueInfo {
  name: string;
  elemType: OnnxTypeCode;
  shape: OnnxDim[];
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  initializers: OnnxTensor[];
  valueInfo?: OnnxValueInfo[];
}

export interface OnnxModel {
  graph: OnnxGraph;
  /** Default-domain opset, 17..21. */
  opset: number;
  /** Extra opset imports, e.g. { 'com.microsoft': 1 }. */
  extraOpsets?: Record<string, number>;
  producer?: string;
  metadata?: Record<string, string>;
}

/** IR version matching each opset, per the ONNX versioning table. */
function irVersionFor(opset: number): number {
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

function encodeTensor(t: OnnxTensor): ProtoWriter {
  const w = new ProtoWriter();
  w.packedInts(1, t.dims);
  w.int(2, t.dataType);
  w.string(8, t.name);
  if (t.external) {
    for (const [k, v] of [
      ['location', t.external.location],
      ['offset', String(t.external.offset)],
      ['length', String(t.external.length)],
    ] as const) {
      w.message(13, new ProtoWriter().string(1, k).string(2, v));
    }
    w.int(14, 1);
  } else {
    w.bytes(9, t.raw ?? new Uint8Array(0));
  }
  return w;
}

function encodeAttr(name: string, a: OnnxAttr): ProtoWriter {
  const w = new ProtoWriter().string(1, name);
  if ('i' in a) w.int(3, a.i).int(20, 2);
  else if ('f' in a) w.float(2, a.f).int(20, 1);
  else if ('s' in a) w.string(4, a.s).int(20, 3);
  else if ('t' in a) w.message(5, encodeTensor(a.t)).int(20, 4);
  else if ('g' in a) w.message(6, encodeGraph(a.g)).int(20, 5);
  else if ('floats' in a) w.packedFloats(7, a.floats).int(20, 6);
  else w.packedInts(8, a.ints).int(20, 7);
  return w;
}

function encodeNode(n: OnnxNode): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  if (n.name) w.string(3, n.name);
  w.string(4, n.opType);
  for (const [k, v] of Object.entries(n.attributes ?? {})) w.message(5, encodeAttr(k, v));
  if (n.domain) w.string(7, n.domain);
  return w;
}

function encodeValueInfo(v: OnnxValueInfo): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.shape) {
    const dim = new ProtoWriter();
    if (typeof d === 'number') dim.int(1, d);
    else if (typeof d === 'string') dim.string(2, d);
    shape.message(1, dim);
  }
  const tensorType = new ProtoWriter().int(1, v.elemType).message(2, shape);
  const type = new ProtoWriter().message(1, tensorType);
  return new ProtoWriter().string(1, v.name).message(2, type);
}

function encodeGraph(g: OnnxGraph): ProtoWriter {
  const w = new ProtoWriter();
  for (const n of g.nodes) w.message(1, encodeNode(n));
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, encodeTensor(t));
  for (const i of g.inputs) w.message(11, encodeValueInfo(i));
  for (const o of g.outputs) w.message(12, encodeValueInfo(o));
  for (const v of g.valueInfo ?? []) w.message(13, encodeValueInfo(v));
  return w;
}

/** Protobuf refuses messages of 2 GiB or more. */
export const MAX_PROTO_BYTES = 2 ** 31 - 1;

/** Serialises a ModelProto. Keep inline initializers small: protobuf caps a message at 2 GiB. */
export function encodeModel(m: OnnxModel): Uint8Array {
  if (m.opset < 17 || m.opset > 21) throw new Error(`ONNX opset ${m.opset} is outside the supported range 17..21`);
  const w = new ProtoWriter();
  w.int(1, irVersionFor(m.opset));
  w.string(2, m.producer ?? 'resflow');
  w.message(7, encodeGraph(m.graph));
  w.message(8, new ProtoWriter().string(1, '').int(2, m.opset));
  for (const [domain, version] of Object.entries(m.extraOpsets ?? {})) {
    w.message(8, new ProtoWriter().string(1, domain).int(2, version));
  }
  for (const [k, v] of Object.entries(m.metadata ?? {})) w.message(14, new ProtoWriter().string(1, k).string(2, v));
  // Checked before the chunks are concatenated, so an oversized model is refused without allocating it first.
  if (w.byteLength > MAX_PROTO_BYTES) {
    throw new Error(`ONNX model is ${w.byteLength} bytes, over protobuf's 2 GiB limit: move initializers to external data`);
  }
  return w.finish();
}
