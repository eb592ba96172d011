/**
 * Peak-RSS measurement of the tiny UNet's gradient graph with and without recomputation (not a vitest file:
 * each configuration needs a fresh process so that peak RSS means something).
 *
 *   npx tsx test/graph/autodiff-memory.ts            # all configurations, one child process each
 *   npx tsx test/graph/autodiff-memory.ts <mode> <B> <H> <W> [arena|noarena]
 *
 * mode: forward (loss only), grad (plain backward), recompute (backward with per-block recomputation).
 * The session is built here rather than by compileGraph so that ORT's CPU arena can be switched off: with
 * it, peak RSS includes the arena's rounding and fragmentation; without it, RSS follows live tensors.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { applyLayout, lowerToOnnx, type Graph, type TensorData } from '../../runtime/graph/index.js';
import { encodeModel, OnnxType } from '../../runtime/onnx/model.js';
import { buildGradientGraph } from '../../runtime/graph/autodiff/index.js';
import { TRAINABLE, tinyUnetFeeds, tinyUnetLossGraph } from './autodiff-unet-fixture.js';

async function session(graph: Graph, arena: boolean) {
  const lowered = lowerToOnnx(graph);
  const byValue = new Map(graph.weights.map((w) => [w.value, w]));
  const fed: Record<string, ort.Tensor> = {};
  for (const w of lowered.weights) {
    const data = applyLayout(byValue.get(w.value)!.source.load(), w.layout);
    if (w.overridable) fed[w.onnxName] = new ort.Tensor('float32', data, w.layout.dims);
    else lowered.model.graph.initializers.push({ name: w.onnxName, dataType: OnnxType.FLOAT, dims: w.layout.dims, raw: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
  }
  const s = await ort.InferenceSession.create(encodeModel(lowered.model), { graphOptimizationLevel: 'all', enableCpuMemArena: arena, intraOpNumThreads: 2 });
  return (feeds: Record<string, TensorData>) => {
    const all: Record<string, ort.Tensor> = { ...fed };
    for (const [k, v] of Object.entries(feeds)) all[k] = new ort.Tensor('float32', v.data as Float32Array, v.dims);
    return s.run(all);
  };
}

const MiB = 1024 * 1024;
const maxRssMiB = () => (process.resourceUsage().maxRSS * 1024) / MiB;
const rssMiB = () => process.memoryUsage().rss / MiB;

async function child(mode: string, b: number, h: number, w: number, arena: boolean): Promise<void> {
  const forward = tinyUnetLossGraph();
  const graph = mode === 'forward' ? forward : buildGradientGraph(forward, { loss: 'loss', wrt: TRAINABLE, recompute: mode === 'recompute' });
  const run = await session(graph, arena);
  const feeds = tinyUnetFeeds(b, h, w, 1);
  const before = rssMiB();
  const peakBefore = maxRssMiB();
  const t0 = performance.now();
  await run(feeds);
  const seconds = (performance.now() - t0) / 1000;
  const peak = maxRssMiB();
  const f = (x: number) => +x.toFixed(1);
  console.log(JSON.stringify({ mode, b, h, w, arena, nodes: graph.nodes.length, rssBeforeRun: f(before), peakBeforeRun: f(peakBefore), peak: f(peak), runPeakAboveBase: f(peak - before), seconds: +seconds.toFixed(2) }));
}

function main(): void {
  const [mode, b, h, w, arena] = process.argv.slice(2);
  if (mode) {
    void child(mode, Number(b), Number(h), Number(w), arena !== 'noarena');
    return;
  }
  const self = fileURLToPath(import.meta.url);
  const configs = [
    [1, 32, 32],
    [1, 64, 64],
    [2, 64, 64],
    [1, 96, 96],
  ];
  for (const arena of ['arena', 'noarena']) {
    for (const [b, h, w] of configs) {
      for (const m of ['forward', 'grad', 'recompute']) {
        const r = spawnSync(process.execPath, [...process.execArgv, self, m, String(b), String(h), String(w), arena], { encoding: 'utf8' });
        process.stdout.write(r.stdout || r.stderr);
      }
    }
  }
}

main();
