/**
 * A model far above protobuf's 2 GiB limit: ≥ 3 GB of float32 weights in an external data file. Prints
 * session-creation time and peak RSS against the weight bytes (target ≤ 1.3×).
 *
 *   npx tsx bench/external-data.bench.ts [--gb 3.2]
 */
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { GraphBuilder } from '../runtime/graph/builder.js';
import { compileGraph, releaseSession } from '../runtime/graph/session.js';
import { SeededRandom } from '../runtime/models/synthetic/generate.js';
import { BENCH_CACHE, gib, peakRssBytes, reportLoad, timeIt } from './lib.js';

const { values } = parseArgs({ options: { gb: { type: 'string', default: '3.2' } } });
const width = 2048;
const layerBytes = width * width * 4;
const layers = Math.ceil((Number(values.gb) * 1e9) / layerBytes);
const cacheDir = join(BENCH_CACHE, `external-${process.pid}`);
process.on('exit', () => rmSync(cacheDir, { recursive: true, force: true }));
reportLoad();

// A deep stack of linear layers: weights dominate, activations are tiny, so RSS measures weight handling.
const g = new GraphBuilder();
let h = g.input('x', 'float32', ['B', width]);
for (let i = 0; i < layers; i++) {
  const w = g.weight(`layer.${i}.weight`, [width, width], {
    key: `bench-external-v1#${i}`,
    load: () => new SeededRandom(i + 1).fillNormal(new Float32Array(width * width), 0, 1 / Math.sqrt(width)),
  });
  h = g.linear(h, w);
}
g.output('y', h);
const weightBytes = layers * layerBytes;
console.log(`${layers} linear layers ${width}×${width}: ${gib(weightBytes)} of float32 weights`);

const [cold, coldMs] = await timeIt(() => compileGraph(g.graph, { cacheDir }));
console.log(`session creation, cold (weights generated and written to the external file): ${(coldMs / 1000).toFixed(1)} s`);
console.log(`external file: ${gib(statSync(join(cacheDir, 'onnx', cold.hash, 'weights.bin')).size)}`);
await releaseSession(cold.hash);
const [warm, warmMs] = await timeIt(() => compileGraph(g.graph, { cacheDir }));
console.log(`session creation, warm (ONNX + external file cached): ${(warmMs / 1000).toFixed(1)} s`);
const x = { data: new SeededRandom(0).fillNormal(new Float32Array(4 * width), 0, 1), dims: [4, width] };
const [r, runMs] = await timeIt(() => warm.run({ x }));
const y = r.y!.data as Float32Array;
if (!y.every(Number.isFinite)) throw new Error('non-finite output');
console.log(`run (batch 4): ${runMs.toFixed(0)} ms; output finite`);
const rss = peakRssBytes();
console.log(`peak RSS ${gib(rss)} = ${(rss / weightBytes).toFixed(2)}× weight bytes (target ≤ 1.3×) ${rss / weightBytes <= 1.3 ? 'OK' : 'MISS'}`);
