/**
 * Which of ONNX Runtime's 8-bit CPU kernels actually run fast here: SD1.5-typical GEMMs and a 3×3 conv, fp32
 * against every integer route ORT offers (models written with our own ONNX encoder). Prints medians, the
 * speed-up over fp32 in the same run, and each kernel's relative RMS error against fp32.
 *
 *   npx tsx bench/int8-kernels.bench.ts [--reps 5] [--threads 2] [--only gemm|conv] [--convs 128:128:512,256:256:256] [--isa avx2]
 *
 * `--isa avx2` reruns it with bench/cpuid-mask.c preloaded: ONNX Runtime then dispatches as on an AVX2-only CPU.
 */
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { encodeModel, OnnxType, type OnnxModel, type OnnxNode, type OnnxTensor } from '../runtime/onnx/model.js';
import { quantizePerChannel, relativeRms } from '../runtime/graph/quantize.js';
import { SeededRandom } from '../runtime/models/synthetic/generate.js';
import { cpuIsa, median, reportLoad, runUnderIsa } from './lib.js';

// --convs C:O:H,... times 3×3 convs of those shapes instead of the UNet's two (e.g. the VAE decoder's 128:128:512).
const { values } = parseArgs({ options: { reps: { type: 'string', default: '5' }, threads: { type: 'string', default: '2' }, only: { type: 'string' }, convs: { type: 'string' }, isa: { type: 'string' } } });
const reps = Number(values.reps);
const threads = Number(values.threads);
const rng = new SeededRandom(7);
const log = (s: string) => console.log(s);

const f32 = (name: string, dims: number[], data: Float32Array): OnnxTensor => ({ name, dataType: OnnxType.FLOAT, dims, raw: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)) });
const i8 = (name: string, dims: number[], data: Int8Array | Uint8Array, type: number = OnnxType.INT8): OnnxTensor => ({ name, dataType: type as OnnxTensor['dataType'], dims, raw: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)) });

function model(nodes: OnnxNode[], initializers: OnnxTensor[], xShape: number[], yShape: number[]): Uint8Array {
  const m: OnnxModel = {
    opset: 21,
    extraOpsets: { 'com.microsoft': 1 },
    graph: { name: 'k', nodes, initializers, inputs: [{ name: 'x', elemType: OnnxType.FLOAT, shape: xShape }], outputs: [{ name: 'y', elemType: OnnxType.FLOAT, shape: yShape }] },
  };
  return encodeModel(m);
}

async function time(name: string, bytes: Uint8Array, x: Float32Array, xShape: number[], flops: number, ref?: Float32Array): Promise<{ ms: number; out: Float32Array } | undefined> {
  let s: ort.InferenceSession;
  try {
    s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all', intraOpNumThreads: threads });
  } catch (e) {
    log(`  ${name.padEnd(44)} not available: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 160)}`);
    return undefined;
  }
  const feeds = { x: new ort.Tensor('float32', x, xShape) };
  let out: Float32Array;
  try {
    out = (await s.run(feeds)).y!.data as Float32Array;
  } catch (e) {
    log(`  ${name.padEnd(44)} fails to run: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 160)}`);
    return undefined;
  }
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await s.run(feeds);
    ts.push(performance.now() - t0);
  }
  await s.release();
  const ms = median(ts);
  const err = ref ? relativeRms(out, ref) : 0;
  log(`  ${name.padEnd(44)} ${ms.toFixed(1).padStart(7)} ms  ${((flops / (ms / 1000)) / 1e9).toFixed(0).padStart(5)} GOP/s${ref ? `  rel RMS ${err.toExponential(2)}` : ''}`);
  return { ms, out };
}


/** MatMulNBits block quantisation: per (column, block) absmax scale, unsigned codes with a fixed mid zero point. */
function nbits(w: Float32Array, K: number, N: number, bits: 4 | 8, block: number): { packed: Uint8Array; scales: Float32Array; blobs: number } {
  const blocks = Math.ceil(K / block);
  const blob = (block * bits) / 8;
  const packed = new Uint8Array(N * blocks * blob);
  const scales = new Float32Array(N * blocks);
  const qmax = bits === 8 ? 127 : 7;
  const mid = bits === 8 ? 128 : 8;
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < blocks; b++) {
      let amax = 0;
      for (let k = b * block; k < Math.min(K, (b + 1) * block); k++) amax = Math.max(amax, Math.abs(w[k * N + n]!));
      const s = amax / qmax || 1;
      scales[n * blocks + b] = s;
      for (let j = 0; j < block; j++) {
        const k = b * block + j;
        const q = k < K ? Math.max(-qmax - 1, Math.min(qmax, Math.round(w[k * N + n]! / s))) + mid : mid;
        const at = (n * blocks + b) * blob;
        if (bits === 8) packed[at + j] = q;
        else packed[at + (j >> 1)]! |= (j & 1 ? q << 4 : q);
      }
    }
  }
  return { packed, scales, blobs: blocks };
}

async function gemm(M: number, K: number, N: number): Promise<void> {
  log(`MatMul [${M}×${K}]·[${K}×${N}] (${((2 * M * K * N) / 1e9).toFixed(2)} GFLOP)`);
  const flops = 2 * M * K * N;
  const x = rng.fillNormal(new Float32Array(M * K), 0, 1);
  const w = rng.fillNormal(new Float32Array(K * N), 0, 1 / Math.sqrt(K)); // [K, N], MatMul layout
  const q = quantizePerChannel(transpose(w, K, N), N, K); // per output channel, from the [out, in] layout
  const wq = transposeI8(q.data, N, K); // back to [K, N]
  const base = await time('fp32 MatMul', model([{ opType: 'MatMul', inputs: ['x', 'w'], outputs: ['y'] }], [f32('w', [K, N], w)], [M, K], [M, N]), x, [M, K], flops);
  const ref = base?.out;
  await time(
    'DynamicQuantizeLinear + MatMulInteger',
    model(
      [
        { opType: 'DynamicQuantizeLinear', inputs: ['x'], outputs: ['xq', 'xs', 'xz'] },
        { opType: 'MatMulInteger', inputs: ['xq', 'w', 'xz'], outputs: ['acc'] },
        { opType: 'Cast', inputs: ['acc'], outputs: ['accf'], attributes: { to: { i: OnnxType.FLOAT } } },
        { opType: 'Mul', inputs: ['xs', 'ws'], outputs: ['sc'] },
        { opType: 'Mul', inputs: ['accf', 'sc'], outputs: ['y'] },
      ],
      [i8('w', [K, N], wq), f32('ws', [N], q.scales)],
      [M, K],
      [M, N],
    ),
    x, [M, K], flops, ref,
  );
  await time(
    'com.microsoft DynamicQuantizeMatMul',
    model([{ opType: 'DynamicQuantizeMatMul', domain: 'com.microsoft', inputs: ['x', 'w', 'ws'], outputs: ['y'] }], [i8('w', [K, N], wq), f32('ws', [N], q.scales)], [M, K], [M, N]),
    x, [M, K], flops, ref,
  );
  for (const [bits, block] of [[8, 32], [8, 128], [4, 32], [4, 128]] as const) {
    const nb = nbits(w, K, N, bits, block);
    await time(
      `MatMulNBits bits=${bits} block=${block} acc_level 4`,
      model(
        [{ opType: 'MatMulNBits', domain: 'com.microsoft', inputs: ['x', 'w', 'ws'], outputs: ['y'], attributes: { K: { i: K }, N: { i: N }, bits: { i: bits }, block_size: { i: block }, accuracy_level: { i: 4 } } }],
        [i8('w', [N, nb.blobs, (block * bits) / 8], nb.packed, OnnxType.UINT8), f32('ws', [N * nb.blobs], nb.scales)],
        [M, K],
        [M, N],
      ),
      x, [M, K], flops, ref,
    );
  }
}

async function conv(B: number, C: number, O: number, H: number): Promise<void> {
  const flops = 2 * B * O * H * H * C * 9;
  log(`Conv 3×3 ${C}→${O} at ${B}×${H}×${H} (${(flops / 1e9).toFixed(2)} GFLOP)`);
  const x = rng.fillNormal(new Float32Array(B * C * H * H), 0, 1);
  const w = rng.fillNormal(new Float32Array(O * C * 9), 0, 1 / Math.sqrt(C * 9));
  const q = quantizePerChannel(w, O, C * 9);
  const attrs = { kernel_shape: { ints: [3, 3] }, pads: { ints: [1, 1, 1, 1] } };
  const xs = [B, C, H, H];
  const ys = [B, O, H, H];
  const base = await time('fp32 Conv', model([{ opType: 'Conv', inputs: ['x', 'w'], outputs: ['y'], attributes: attrs }], [f32('w', [O, C, 3, 3], w)], xs, ys), x, xs, flops);
  const ref = base?.out;
  await time(
    'DynamicQuantizeLinear + ConvInteger (s8 w)',
    model(
      [
        { opType: 'DynamicQuantizeLinear', inputs: ['x'], outputs: ['xq', 'xs', 'xz'] },
        { opType: 'ConvInteger', inputs: ['xq', 'w', 'xz'], outputs: ['acc'], attributes: attrs },
        { opType: 'Cast', inputs: ['acc'], outputs: ['accf'], attributes: { to: { i: OnnxType.FLOAT } } },
        { opType: 'Mul', inputs: ['xs', 'ws'], outputs: ['sc'] },
        { opType: 'Mul', inputs: ['accf', 'sc'], outputs: ['y'] },
      ],
      [i8('w', [O, C, 3, 3], q.data), f32('ws', [1, O, 1, 1], q.scales)],
      xs,
      ys,
    ),
    x, xs, flops, ref,
  );
  // im2col on the quantised (u8) input: 9 shifted slices of the zero-point-padded input, one integer GEMM.
  const cols = im2colInt8Nodes(B, C, O, H);
  const w9 = new Int8Array(9 * C * O); // [9C, O], row index (kh*3+kw)*C + c
  for (let o = 0; o < O; o++) for (let c = 0; c < C; c++) for (let k = 0; k < 9; k++) w9[(k * C + c) * O + o] = q.data[(o * C + c) * 9 + k]!;
  await time('DQL + u8 im2col + MatMulInteger', model(cols.nodes, [...cols.inits, i8('w', [9 * C, O], w9), f32('ws', [O], q.scales)], xs, ys), x, xs, flops, ref);
  const colsL = im2colInt8Nodes(B, C, O, H, true);
  await time('DQL + u8 NHWC im2col + MatMulInteger', model(colsL.nodes, [...colsL.inits, i8('w', [9 * C, O], w9), f32('ws', [O], q.scales)], xs, ys), x, xs, flops, ref);
  // QLinearConv needs a static output scale: the fp32 run's range stands in for a calibration.
  let amax = 0;
  for (const v of ref ?? []) amax = Math.max(amax, Math.abs(v));
  const ys8 = amax / 127 || 1;
  await time(
    'DQL + QLinearConv (s8 w, per-channel, u8 out)',
    model(
      [
        { opType: 'DynamicQuantizeLinear', inputs: ['x'], outputs: ['xq', 'xs', 'xz'] },
        { opType: 'QLinearConv', inputs: ['xq', 'xs', 'xz', 'w', 'ws', 'wz', 'ys', 'yz'], outputs: ['yq'], attributes: attrs },
        { opType: 'DequantizeLinear', inputs: ['yq', 'ys', 'yz'], outputs: ['y'] },
      ],
      [i8('w', [O, C, 3, 3], q.data), f32('ws', [O], q.scales), i8('wz', [O], new Int8Array(O)), f32('ys', [], new Float32Array([ys8 * 2])), i8('yz', [], new Uint8Array([128]), OnnxType.UINT8)],
      xs,
      ys,
    ),
    x, xs, flops, ref,
  );
}

function im2colInt8Nodes(B: number, C: number, O: number, H: number, channelsLast = false): { nodes: OnnxNode[]; inits: OnnxTensor[] } {
  const i64 = (name: string, v: number[]): OnnxTensor => ({ name, dataType: OnnxType.INT64, dims: [v.length], raw: new Uint8Array(BigInt64Array.from(v.map(BigInt)).buffer) });
  const nodes: OnnxNode[] = [
    { opType: 'DynamicQuantizeLinear', inputs: ['x'], outputs: ['xq', 'xs', 'xz'] },
  ];
  if (channelsLast) nodes.push({ opType: 'Transpose', inputs: ['xq'], outputs: ['xqt'], attributes: { perm: { ints: [0, 2, 3, 1] } } }, { opType: 'Pad', inputs: ['xqt', 'pads', 'xz'], outputs: ['xp'] });
  else nodes.push({ opType: 'Pad', inputs: ['xq', 'pads', 'xz'], outputs: ['xp'] });
  const inits = [i64('pads', channelsLast ? [0, 1, 1, 0, 0, 1, 1, 0] : [0, 0, 1, 1, 0, 0, 1, 1]), i64('ax', channelsLast ? [1, 2] : [2, 3]), i64('shape2', [B * H * H, 9 * C]), i64('shape3', [B, H, H, O])];
  const parts: string[] = [];
  for (let kh = 0; kh < 3; kh++) for (let kw = 0; kw < 3; kw++) {
    inits.push(i64(`st${kh}${kw}`, [kh, kw]), i64(`en${kh}${kw}`, [kh + H, kw + H]));
    nodes.push({ opType: 'Slice', inputs: ['xp', `st${kh}${kw}`, `en${kh}${kw}`, 'ax'], outputs: [`s${kh}${kw}`] });
    parts.push(`s${kh}${kw}`);
  }
  nodes.push(
    { opType: 'Concat', inputs: parts, outputs: [channelsLast ? 'catT' : 'cat'], attributes: { axis: { i: channelsLast ? 3 : 1 } } },
    ...(channelsLast ? [] : [{ opType: 'Transpose', inputs: ['cat'], outputs: ['catT'], attributes: { perm: { ints: [0, 2, 3, 1] } } }]),
    { opType: 'Reshape', inputs: ['catT', 'shape2'], outputs: ['a'] },
    { opType: 'MatMulInteger', inputs: ['a', 'w', 'xz'], outputs: ['acc'] },
    { opType: 'Cast', inputs: ['acc'], outputs: ['accf'], attributes: { to: { i: OnnxType.FLOAT } } },
    { opType: 'Mul', inputs: ['xs', 'ws'], outputs: ['sc'] },
    { opType: 'Mul', inputs: ['accf', 'sc'], outputs: ['yf'] },
    { opType: 'Reshape', inputs: ['yf', 'shape3'], outputs: ['yr'] },
    { opType: 'Transpose', inputs: ['yr'], outputs: ['y'], attributes: { perm: { ints: [0, 3, 1, 2] } } },
  );
  return { nodes, inits };
}

function transpose(a: Float32Array, r: number, c: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) t[j * r + i] = a[i * c + j]!;
  return t;
}
function transposeI8(a: Int8Array, r: number, c: number): Int8Array {
  const t = new Int8Array(a.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) t[j * r + i] = a[i * c + j]!;
  return t;
}

const rerun = runUnderIsa(values.isa, log);
if (rerun !== undefined) process.exit(rerun);
reportLoad(log);
log(`ISA: ${cpuIsa()}; ORT ${ort.env.versions.node ?? ''} threads ${threads}`);
if (!values.only || values.only === 'gemm') {
  await gemm(8192, 320, 1280);
  await gemm(4096, 640, 640);
  await gemm(2048, 1280, 5120);
}
if (!values.only || values.only === 'conv') {
  const shapes = values.convs ? values.convs.split(',').map((t) => t.split(':').map(Number) as [number, number, number]) : [[320, 320, 64], [640, 640, 32]] as const;
  for (const [c, o, h] of shapes) await conv(1, c, o, h);
}
reportLoad(log);
