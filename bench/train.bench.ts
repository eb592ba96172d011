/**
 * One ResAdapter training step (forward + backward + AdamW, rank 16) on the demo model ("tiny") or on a
 * full-size SD1.5 UNet with random F16 weights ("sd15"), batch 1 at 256² by default, at each size given:
 *   - step time, forward time, backward/forward ratio (target ≤ 3), AdamW time;
 *   - peak RSS of the training process with and without recomputation (checkpointed training, one UNet
 *     block at a time: runtime/graph/segmented-session.ts), and the ratios recompute / plain of both.
 *
 *   npx tsx bench/train.bench.ts [--model tiny|sd15] [--size 256,512] [--batch 1] [--steps 5] [--threads N]
 *                                [--rss-cap-gb 15]
 *
 * Each measurement runs in its own child process, so one's peak RSS never includes another's sessions. A
 * child whose RSS passes --rss-cap-gb is stopped and reported as "> cap" (plain SD1.5 at 512² needs more
 * than a 24 GB machine can give while anything else runs).
 * The SD1.5 checkpoint is the one bench/resadapter.bench.ts writes (.cache/bench/, about 2 GiB); compiled
 * models go to .cache/bench/resflow/. Prints medians; asserts nothing.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { compileGraph } from '../runtime/graph/session.js';
import { inferUnetConfig } from '../runtime/models/unet/config.js';
import { WeightSet } from '../runtime/models/weights.js';
import { ensureDemoModels } from '../runtime/models/synthetic/demo.js';
import { ensureSd15Checkpoint, reportLoad } from './lib.js';
import { ModelSampling } from '../runtime/sampling/model-sampling.js';
import { TorchGenerator } from '../runtime/sampling/torch-rng.js';
import { SafetensorsFile } from '../runtime/safetensors/index.js';
import { RECIPE_ADAMW } from '../runtime/training/adamw.js';
import { FixedBatchSource, type MicroBatch } from '../runtime/training/batches.js';
import { adapterLayout, initParams } from '../runtime/training/params.js';
import { buildLossGraph } from '../runtime/training/train-graph.js';
import { ResAdapterTrainer } from '../runtime/training/trainer.js';
import { SegmentedGradient } from '../runtime/graph/segmented-session.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'tiny' },
    size: { type: 'string', default: '256' },
    batch: { type: 'string', default: '1' },
    steps: { type: 'string', default: '5' },
    threads: { type: 'string' },
    'rss-cap-gb': { type: 'string', default: '15' },
    child: { type: 'string' },
  },
});
const sizes = args.size!.split(',').map(Number);
const batch = Number(args.batch);
const steps = Number(args.steps);
const rssCapMb = Number(args['rss-cap-gb']) * 1024;
if (!['tiny', 'sd15'].includes(args.model!)) throw new Error('--model must be tiny or sd15');
if (!sizes.every((size) => size % 64 === 0 && size >= 64) || !(batch >= 1) || !(steps >= 1)) throw new Error('--size must be multiples of 64, --batch and --steps >= 1');
const size = sizes[0]!;
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
  /** Recompute only: blocks, and MB of the one weight copy all block sessions read. */
  blocks?: number;
  weightMb?: number;
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
  const seg = trainer.session instanceof SegmentedGradient ? { blocks: trainer.session.segmentNames.length, weightMb: trainer.session.weightBytes / 2 ** 20 } : {};
  return { kind, compileS, forwardMs: median(fwd), gradRunMs: median(run), stepMs: median(step), adamMs: median(opt), peakRssMb, ...seg };
}

interface Outcome {
  result?: ChildResult;
  /** Stopped at the RSS cap (MB). */
  capped?: number;
}

/** Runs one measurement in a child process, stopping it if its RSS passes the cap. */
function measure(kind: string, at: number): Promise<Outcome> {
  const self = fileURLToPath(import.meta.url);
  const pass = ['--model', args.model!, '--size', String(at), '--batch', String(batch), '--steps', String(steps), ...(args.threads ? ['--threads', args.threads] : [])];
  const child = spawn(process.execPath, [...process.execArgv, self, ...pass, '--child', kind], { env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-8000)));
  let capped: number | undefined;
  const watch = setInterval(() => {
    try {
      const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1]);
      if (kb / 1024 > rssCapMb && capped === undefined) {
        capped = kb / 1024;
        child.kill('SIGKILL');
      }
    } catch {
      // Not Linux, or the child just ended: no watchdog.
    }
  }, 100);
  return new Promise((done, fail) => {
    child.on('close', (code) => {
      clearInterval(watch);
      if (capped !== undefined) return done({ capped });
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (!line) return fail(new Error(`${kind} run at ${at}² failed (exit ${code}):\n${err}`));
      done({ result: JSON.parse(line.slice(7)) as ChildResult });
    });
  });
}

const gb = (mb: number) => `${(mb / 1024).toFixed(2)} GB`;

if (args.child) {
  console.log(`RESULT ${JSON.stringify(await child(args.child))}`);
} else {
  checkpoint();
  reportLoad();
  for (const at of sizes) {
    const results: Record<string, Outcome> = {};
    for (const kind of ['forward', 'plain', 'recompute']) results[kind] = await measure(kind, at);
    console.log(`ResAdapter training step, ${args.model} UNet, batch ${batch} at ${at}² (latent ${at / 8}²), rank 16, ${steps} timed steps, median`);
    const f = results.forward!.result;
    if (f) console.log(`  forward only:            ${f.forwardMs!.toFixed(1)} ms  (compile ${f.compileS.toFixed(1)} s, peak RSS ${gb(f.peakRssMb)})`);
    else console.log(`  forward only:            stopped: RSS passed ${gb(results.forward!.capped!)}`);
    for (const kind of ['plain', 'recompute']) {
      const label = kind === 'plain' ? 'train step:             ' : 'train step, recompute:  ';
      const r = results[kind]!.result;
      if (!r) {
        console.log(`  ${label} stopped: RSS passed ${gb(results[kind]!.capped!)} (the --rss-cap-gb cap)`);
        continue;
      }
      const bwd = r.gradRunMs! - r.forwardMs!;
      console.log(
        `  ${label} ${r.stepMs!.toFixed(1)} ms = fwd+bwd ${r.gradRunMs!.toFixed(1)} ms + AdamW ${r.adamMs!.toFixed(1)} ms; ` +
          `forward ${r.forwardMs!.toFixed(1)} ms, backward/forward ${(bwd / r.forwardMs!).toFixed(2)} (target ≤ 3); compile ${r.compileS.toFixed(1)} s; peak RSS ${gb(r.peakRssMb)}`,
      );
      if (r.weightMb !== undefined) {
        console.log(`    ${r.blocks} blocks; weights (one F32 copy) ${gb(r.weightMb)}, so the largest block's activations + runtime peak at ${gb(r.peakRssMb - r.weightMb)}`);
      }
    }
    const p = results.plain!;
    const r = results.recompute!.result;
    if (r && p.result) {
      console.log(
        `  recompute / plain: peak RSS ${(r.peakRssMb / p.result.peakRssMb).toFixed(2)} (${gb(r.peakRssMb)} vs ${gb(p.result.peakRssMb)}), ` +
          `step time ${(r.stepMs! / p.result.stepMs!).toFixed(2)} (${r.stepMs!.toFixed(0)} vs ${p.result.stepMs!.toFixed(0)} ms; each against its own same-run forward: ${(r.stepMs! / r.forwardMs!).toFixed(2)} vs ${(p.result.stepMs! / p.result.forwardMs!).toFixed(2)} forwards)`,
      );
    } else if (r && p.capped) {
      console.log(`  recompute / plain: peak RSS < ${(r.peakRssMb / p.capped).toFixed(2)} (${gb(r.peakRssMb)} vs more than ${gb(p.capped)}); step time: plain did not fit under the cap`);
    }
  }
  reportLoad();
}
