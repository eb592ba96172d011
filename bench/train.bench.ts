/**
 * One ResAdapter training step (forward + backward + AdamW, rank 16) on the demo model ("tiny") or on a
 * full-size SD1.5 UNet with random F16 weights ("sd15"), batch 1 at 256² by default:
 *   - step time, forward time, backward/forward ratio (target ≤ 3), AdamW time;
 *   - peak RSS of the training process with and without activation recomputation.
 *
 *   npx tsx bench/train.bench.ts [--model tiny|sd15] [--size 256] [--batch 1] [--steps 5] [--threads N]
 *
 * Each measurement runs in its own child process, so one's peak RSS never includes another's sessions.
 * The SD1.5 checkpoint is the one bench/resadapter.bench.ts writes (.cache/bench/, about 2 GiB); compiled
 * models go to .cache/bench/resflow/. Prints medians; asserts nothing.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { compileGraph } from '../runtime/graph/session.js';
import { inferUnetConfig } from '../runtime/models/unet/config.js';
import { WeightSet } from '../runtime/models/weights.js';
import { ensureDemoModels } from '../runtime/models/synthetic/demo.js';
import { ensureSd15Checkpoint } from './lib.js';
import { ModelSampling } from '../runtime/sampling/model-sampling.js';
import { TorchGenerator } from '../runtime/sampling/torch-rng.js';
import { SafetensorsFile } from '../runtime/safetensors/index.js';
import { RECIPE_ADAMW } from '../runtime/training/adamw.js';
import { FixedBatchSource, type MicroBatch } from '../runtime/training/batches.js';
import { adapterLayout, initParams } from '../runtime/training/params.js';
import { buildLossGraph } from '../runtime/training/train-graph.js';
import { ResAdapterTrainer } from '../runtime/training/trainer.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'tiny' },
    size: { type: 'string', default: '256' },
    batch: { type: 'string', default: '1' },
    steps: { type: 'string', default: '5' },
    threads: { type: 'string' },
    child: { type: 'string' },
  },
});
const size = Number(args.size);
const batch = Number(args.batch);
const steps = Number(args.steps);
if (!['tiny', 'sd15'].includes(args.model!)) throw new Error('--model must be tiny or sd15');
if (!(size % 64 === 0 && size >= 64) || !(batch >= 1) || !(steps >= 1)) throw new Error('--size must be a multiple of 64, --batch and --steps >= 1');
const cacheDir = join(root, '.cache', 'bench');
process.env.RESFLOW_CACHE_DIR ??= join(cacheDir, 'resflow');

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function checkpoint(): { path: string; prefix: string; heads: number } {
  if (args.model === 'tiny') return { path: ensureDemoModels(join(cacheDir, 'demo')).checkpoint, prefix: 'model.diffusion_model.', heads: 2 };
  return { path: ensureSd15Checkpoint(), prefix: 'model.diffusion_model.', heads: 8 };
}

interface ChildResult {
  kind: string;
  compileS: number;
  forwardMs?: number;
  gradRunMs?: number;
  stepMs?: number;
  adamMs?: number;
  peakRssMb: number;
}

async function child(kind: string): Promise<ChildResult> {
  const ck = checkpoint();
  const weights = new WeightSet(SafetensorsFile.open(ck.path), ck.prefix);
  const config = inferUnetConfig(weights, { numHeads: ck.heads });
  const layout = adapterLayout(weights, 16, 8);
  const h = size / 8;
  const g = new TorchGenerator(1);
  const mb: MicroBatch = {
    x0: g.randn(batch * 4 * h * h),
    noise: g.randn(batch * 4 * h * h),
    timesteps: Float32Array.from({ length: batch }, (_, i) => 100 + 300 * i),
    context: g.randn(batch * 77 * config.contextDim),
    dims: [batch, 4, h, h],
    contextDims: [batch, 77, config.contextDim],
  };
  const threads = args.threads ? Number(args.threads) : undefined;
  const t0 = performance.now();
  const rss = () => process.resourceUsage().maxRSS / 1024;
  const forwardSession = async () => {
    const session = await compileGraph(buildLossGraph(weights, config, layout), threads ? { threads } : {});
    const params = initParams(layout, (k) => weights.read(k), 1);
    const feeds: Record<string, { data: Float32Array; dims: number[] }> = {
      x: { data: mb.x0, dims: mb.dims },
      timesteps: { data: mb.timesteps, dims: [batch] },
      context: { data: mb.context, dims: mb.contextDims },
      target: { data: mb.noise, dims: mb.dims },
    };
    for (const p of layout.params) feeds[p.name] = { data: params.get(p.name)!, dims: p.shape };
    await session.run(feeds);
    return () => session.run(feeds);
  };
  const timed = async (f: () => Promise<unknown>) => {
    const t = performance.now();
    await f();
    return performance.now() - t;
  };
  if (kind === 'forward') {
    const forward = await forwardSession();
    const compileS = (performance.now() - t0) / 1000;
    const times: number[] = [];
    for (let k = 0; k < steps; k++) times.push(await timed(forward));
    return { kind, compileS, forwardMs: median(times), peakRssMb: rss() };
  }
  const trainer = await ResAdapterTrainer.create({ weights, config, alphasCumprod: new ModelSampling().alphasCumprod }, layout, {
    batchSize: batch,
    microBatch: batch,
    adamw: RECIPE_ADAMW,
    warmupSteps: 0,
    gradClip: 1,
    seed: 1,
    recompute: kind === 'recompute',
    ...(threads ? { threads } : {}),
  });
  const compileS = (performance.now() - t0) / 1000;
  const src = new FixedBatchSource(mb);
  for (let k = 0; k < 2; k++) await trainer.trainStep(src);
  // maxRSS only grows: read the training peak before the forward-only session adds its own memory.
  const peakRssMb = rss();
  const forward = await forwardSession();
  // Interleaved, so load from other processes hits forward and backward alike.
  const fwd: number[] = [];
  const run: number[] = [];
  const opt: number[] = [];
  const step: number[] = [];
  for (let k = 0; k < steps; k++) {
    fwd.push(await timed(forward));
    const m = await trainer.trainStep(src);
    step.push(m.seconds * 1000);
    run.push(m.runSeconds * 1000);
    opt.push(m.optimizerSeconds * 1000);
  }
  return { kind, compileS, forwardMs: median(fwd), gradRunMs: median(run), stepMs: median(step), adamMs: median(opt), peakRssMb };
}

if (args.child) {
  console.log(`RESULT ${JSON.stringify(await child(args.child))}`);
} else {
  checkpoint();
  const self = fileURLToPath(import.meta.url);
  const pass = ['--model', args.model!, '--size', String(size), '--batch', String(batch), '--steps', String(steps), ...(args.threads ? ['--threads', args.threads] : [])];
  const results: Record<string, ChildResult> = {};
  for (const kind of ['forward', 'plain', 'recompute']) {
    const r = spawnSync(process.execPath, [...process.execArgv, self, ...pass, '--child', kind], { encoding: 'utf8', env: process.env, maxBuffer: 1 << 26 });
    const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (!line) throw new Error(`${kind} run failed (exit ${r.status}):\n${r.stderr.slice(-4000)}`);
    results[kind] = JSON.parse(line.slice(7)) as ChildResult;
  }
  console.log(`ResAdapter training step, ${args.model} UNet, batch ${batch} at ${size}² (latent ${size / 8}²), rank 16, ${steps} timed steps, median`);
  const f = results.forward!;
  console.log(`  forward only:            ${f.forwardMs!.toFixed(1)} ms  (compile ${f.compileS.toFixed(1)} s, peak RSS ${f.peakRssMb.toFixed(0)} MB)`);
  for (const kind of ['plain', 'recompute']) {
    const r = results[kind]!;
    const bwd = r.gradRunMs! - r.forwardMs!;
    console.log(
      `  ${kind === 'plain' ? 'train step:             ' : 'train step, recompute:  '} ${r.stepMs!.toFixed(1)} ms = fwd+bwd ${r.gradRunMs!.toFixed(1)} ms + AdamW ${r.adamMs!.toFixed(1)} ms; ` +
        `forward ${r.forwardMs!.toFixed(1)} ms, backward/forward ${(bwd / r.forwardMs!).toFixed(2)} (target ≤ 3); compile ${r.compileS.toFixed(1)} s; peak RSS ${r.peakRssMb.toFixed(0)} MB`,
    );
  }
}
