/**
 * SD1.5 at full size (random F16 weights, real key layout): UNet step time at 256², 512², 768² (batch 2, as
 * with CFG), achieved GFLOP/s (FLOPs counted from our own graph) against ORT's own 2048³ MatMul measured in
 * the same run, text-encoder and VAE-decode time, session-creation time, peak RSS.
 *
 *   npx tsx bench/unet.bench.ts [--sizes 256,512,768] [--steps 3]
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { countFlops } from '../runtime/graph/flops.js';
import { releaseSession } from '../runtime/graph/session.js';
import { ClipTextEncoder } from '../runtime/models/clip/index.js';
import { openSd1Checkpoint } from '../runtime/models/checkpoint.js';
import { inferUnetConfig } from '../runtime/models/unet/config.js';
import { UnetModel } from '../runtime/models/unet/model.js';
import { buildUnetGraph } from '../runtime/models/unet/unet.js';
import { Vae } from '../runtime/models/vae/index.js';
import { SeededRandom } from '../runtime/models/synthetic/generate.js';
import { BENCH_CACHE, ensureSd15Checkpoint, gib, median, peakRssBytes, reportLoad, timeIt, ortMatmulYardstick } from './lib.js';

const { values } = parseArgs({ options: { sizes: { type: 'string', default: '256,512,768' }, steps: { type: 'string', default: '3' } } });
const sizes = values.sizes!.split(',').map(Number);
const steps = Number(values.steps);
const log = (s: string) => console.log(s);
const cacheDir = join(BENCH_CACHE, `unet-${process.pid}`);
process.env.RESFLOW_CACHE_DIR = cacheDir;
process.on('exit', () => rmSync(cacheDir, { recursive: true, force: true }));

reportLoad(log);
const ckptPath = ensureSd15Checkpoint(log);
const rng = new SeededRandom(3);

// ORT's own dense throughput on this machine: the yardstick for our graph.
const { ms: mmMs, gflops: mmGflops } = await ortMatmulYardstick();
log(`ORT MatMul 2048³: ${mmMs.toFixed(1)} ms → ${mmGflops.toFixed(1)} GFLOP/s`);

const ck = openSd1Checkpoint(ckptPath);
const config = inferUnetConfig(ck.unet, {}, ck.file.metadata);
const [session, coldMs] = await timeIt(() => new UnetModel(ck.unet, config).session(false));
log(`UNet session creation, cold (F16 → F32 weight file written): ${(coldMs / 1000).toFixed(1)} s; peak RSS ${gib(peakRssBytes())}`);
await releaseSession(session.hash);
// A fresh model object: the released session must not be reused.
const unet = new UnetModel(ck.unet, config);
const [, warmMs] = await timeIt(() => unet.session(false));
log(`UNet session creation, warm (ONNX files cached on disk): ${(warmMs / 1000).toFixed(1)} s (target ≤ 10 s) ${warmMs <= 10_000 ? 'OK' : 'MISS'}`);
const fp32Bytes = unet.weights.names().reduce((s, n) => s + 4 * unet.weights.shape(n).reduce((x, y) => x * y, 1), 0);

const graph = buildUnetGraph(unet.weights, unet.config, { overridable: unet.overridable });
const ctx = { data: rng.fillNormal(new Float32Array(2 * 77 * 768), 0, 1), dims: [2, 77, 768] };
const ts = new Float32Array([500, 500]);
for (const size of sizes) {
  const lat = size / 8;
  const x = { data: rng.fillNormal(new Float32Array(2 * 4 * lat * lat), 0, 1), dims: [2, 4, lat, lat] };
  const flops = countFlops(graph, { x: [2, 4, lat, lat], timesteps: [2], context: [2, 77, 768] }).matmulFlops;
  await unet.eps(x, ts, ctx);
  const times: number[] = [];
  for (let i = 0; i < steps; i++) times.push((await timeIt(() => unet.eps(x, ts, ctx)))[1]);
  const t = median(times) / 1000;
  const gflops = flops / t / 1e9;
  log(
    `UNet ${size}² batch 2: ${t.toFixed(2)} s/step (${(flops / 1e12).toFixed(3)} TFLOP) → ${gflops.toFixed(1)} GFLOP/s, ratio to MatMul ${(gflops / mmGflops).toFixed(2)} (target ≥ 0.75)  [${times.map((v) => (v / 1000).toFixed(2)).join(' ')}]`,
  );
}
log(`UNet fp32 weights ${gib(fp32Bytes)}; peak RSS so far ${gib(peakRssBytes())} = ${(peakRssBytes() / fp32Bytes).toFixed(2)}× weights (target ≤ 1.3× + activations)`);

const [clip, clipLoadMs] = await timeIt(() => ClipTextEncoder.load(ck.clip, { config: { numHeads: 12 } }));
const tokens = [[49406, ...Array.from({ length: 20 }, (_, i) => 320 + i), ...new Array(56).fill(49407)]];
await clip.encodeTokens(tokens);
const clipTimes: number[] = [];
for (let i = 0; i < 5; i++) clipTimes.push((await timeIt(() => clip.encodeTokens(tokens)))[1]);
log(`text encoder: load ${(clipLoadMs / 1000).toFixed(2)} s, encode one 77-token window ${median(clipTimes).toFixed(0)} ms`);

const vae = await Vae.load(ck.file, { prefix: 'first_stage_model.' });
const z = { data: rng.fillNormal(new Float32Array(4 * 64 * 64), 0, 1), shape: [1, 4, 64, 64] as [number, number, number, number] };
const [, vaeFirst] = await timeIt(() => vae.decode(z));
const [, vaeMs] = await timeIt(() => vae.decode(z));
log(`VAE decode 512² (batch 1): ${(vaeMs / 1000).toFixed(2)} s (first call incl. session ${(vaeFirst / 1000).toFixed(2)} s)`);
log(`peak RSS ${gib(peakRssBytes())}`);
