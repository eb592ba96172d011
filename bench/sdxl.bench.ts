/**
 * SDXL at full size (random F16 weights, sd_xl_base_1.0 key layout): UNet step at 1024² batch 2 (CFG), session
 * creation time and peak RSS, with achieved GFLOP/s against ORT's 2048³ MatMul measured in the same run.
 *
 *   npx tsx bench/sdxl.bench.ts [--size 1024] [--steps 2]
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { countFlops } from '../runtime/graph/flops.js';
import { releaseSession } from '../runtime/graph/session.js';
import { openSdxlCheckpoint } from '../runtime/models/sdxl/index.js';
import { UnetModel } from '../runtime/models/unet/model.js';
import { buildUnetGraph } from '../runtime/models/unet/unet.js';
import { SeededRandom } from '../runtime/models/synthetic/generate.js';
import { BENCH_CACHE, ensureSdxlCheckpoint, gib, median, peakRssBytes, reportLoad, timeIt, ortMatmulYardstick } from './lib.js';

const { values } = parseArgs({ options: { size: { type: 'string', default: '1024' }, steps: { type: 'string', default: '2' } } });
const size = Number(values.size);
const steps = Number(values.steps);
const log = (s: string) => console.log(s);
const cacheDir = join(BENCH_CACHE, `sdxl-${process.pid}`);
process.env.RESFLOW_CACHE_DIR = cacheDir;
process.on('exit', () => rmSync(cacheDir, { recursive: true, force: true }));

reportLoad(log);
const path = await ensureSdxlCheckpoint(log);
const rng = new SeededRandom(5);

const { gflops: mmGflops } = await ortMatmulYardstick();
log(`ORT MatMul 2048³: ${mmGflops.toFixed(1)} GFLOP/s`);

const ck = openSdxlCheckpoint(path);
const [cold, coldMs] = await timeIt(() => new UnetModel(ck.unet, ck.unetConfig).session(false));
log(`SDXL UNet session creation, cold (F16 → F32 weight file written): ${(coldMs / 1000).toFixed(1)} s; peak RSS ${gib(peakRssBytes())}`);
await releaseSession(cold.hash);
const unet = new UnetModel(ck.unet, ck.unetConfig);
const [, warmMs] = await timeIt(() => unet.session(false));
log(`SDXL UNet session creation, warm (ONNX files cached): ${(warmMs / 1000).toFixed(1)} s`);
const fp32Bytes = unet.weights.names().reduce((s, n) => s + 4 * unet.weights.shape(n).reduce((x, y) => x * y, 1), 0);

const lat = size / 8;
const adm = unet.config.admInChannels!;
const x = { data: rng.fillNormal(new Float32Array(2 * 4 * lat * lat), 0, 1), dims: [2, 4, lat, lat] };
const ctx = { data: rng.fillNormal(new Float32Array(2 * 77 * 2048), 0, 1), dims: [2, 77, 2048] };
const y = { data: rng.fillNormal(new Float32Array(2 * adm), 0, 1), dims: [2, adm] };
const ts = new Float32Array([500, 500]);
const flops = countFlops(buildUnetGraph(unet.weights, unet.config, { overridable: unet.overridable }), { x: [2, 4, lat, lat], timesteps: [2], context: [2, 77, 2048], y: [2, adm] }).matmulFlops;
const [, first] = await timeIt(() => unet.eps(x, ts, ctx, { y }));
const times: number[] = [];
for (let i = 0; i < steps; i++) times.push((await timeIt(() => unet.eps(x, ts, ctx, { y })))[1]);
const t = median(times) / 1000;
const gflops = flops / t / 1e9;
log(`SDXL UNet ${size}² batch 2: ${t.toFixed(1)} s/step (first ${(first / 1000).toFixed(1)} s), ${(flops / 1e12).toFixed(2)} TFLOP → ${gflops.toFixed(1)} GFLOP/s, ratio to MatMul ${(gflops / mmGflops).toFixed(2)}`);
log(`fp32 UNet weights ${gib(fp32Bytes)}; peak RSS ${gib(peakRssBytes())} = ${(peakRssBytes() / fp32Bytes).toFixed(2)}× weights`);
