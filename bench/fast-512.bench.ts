/**
 * A 512² SD1.5 image end to end on this machine's CPU cores, as a user gets it from the command line:
 * `resflow run workflows/sd15-lcm-int8-512.json` (int8 UNet and VAE, LCM-LoRA, 4 LCM steps at cfg 1), each run a
 * fresh process, timed from spawn to exit (process start, checkpoint and LoRA load, text encoding, sampling,
 * decode, PNG written). Weights are the full-size random SD1.5 of bench/lib.ts and a random LCM-LoRA shaped like
 * the released one (rank 64 on every UNet linear and conv): the timing does not depend on the values.
 *
 *   npx tsx bench/fast-512.bench.ts [--runs 3] [--fp32]
 *
 * `cold` is the first run with an empty compiled-model cache (weights quantised and written); `warm` runs find
 * the cache (a user's second image). `--fp32` also times the same workflow with weight_dtype fp32.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { SD15_UNET } from '../runtime/adapters/arch-tables.js';
import { writeDemoLcmLora } from '../runtime/models/synthetic/demo-extras.js';
import { BENCH_CACHE, cpuIsa, ensureSd15Checkpoint, fmaPeakGflops, median, reportLoad, ROOT } from './lib.js';

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '3' }, fp32: { type: 'boolean', default: false } } });
const warmRuns = Math.max(1, Number(args.runs) - 1);
const log = (s: string) => console.log(s);
const WORKFLOW = join(ROOT, 'workflows', 'sd15-lcm-int8-512.json');
const CKPT = 'v1-5-pruned-emaonly.safetensors';
const LORA = 'lcm-lora-sdv1-5.safetensors';

log(`CPU: ${cpuIsa()}`);
reportLoad(log);
const peak = fmaPeakGflops(2);
if (peak) log(`fp32 FMA peak (2 threads, same run): ${peak.toFixed(1)} GFLOP/s`);

const loraPath = join(BENCH_CACHE, 'sd15-lcm-lora-r64.safetensors');
if (!existsSync(loraPath)) {
  log(`writing ${loraPath} (rank 64 on every UNet linear and conv, random) ...`);
  writeDemoLcmLora(loraPath, SD15_UNET, 7, { 'resflow.synthetic': 'lcm-lora shape' }, { rank: 64, layers: 'all' });
}
const work = mkdtempSync(join(tmpdir(), 'resflow-fast512-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const models = join(work, 'models');
for (const d of ['checkpoints', 'loras', 'tokenizers']) mkdirSync(join(models, d), { recursive: true });
symlinkSync(ensureSd15Checkpoint(log), join(models, 'checkpoints', CKPT));
symlinkSync(loraPath, join(models, 'loras', LORA));
symlinkSync(resolve(ROOT, '../shared/clip-tokenizer'), join(models, 'tokenizers', 'clip-vit-large-patch14'));

interface Run {
  wallS: number;
  peakRssGiB: number;
  nodes: Record<string, number>;
}

const NODE_NAMES: Record<string, string> = { '1': 'load', '2': 'LoRA', '4': 'text+', '5': 'text-', '7': 'sample', '8': 'decode', '9': 'save' };

function runOnce(dtype: string, cacheDir: string, seed: number): Run {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', [
    '-f', 'maxrss_kb=%M', process.execPath, join(ROOT, 'bin', 'resflow.js'), 'run', WORKFLOW, '--data', work, '--json',
    '--set', `1.ckpt_name=${CKPT}`, '--set', `2.lora_name=${LORA}`, '--set', `1.weight_dtype=${dtype}`, '--set', `7.seed=${seed}`,
  ], { env: { ...process.env, RESFLOW_CACHE_DIR: cacheDir }, encoding: 'utf8', maxBuffer: 1 << 26 });
  const wallS = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`resflow run failed (${r.status}):\n${r.stderr.slice(-3000)}`);
  const rss = /maxrss_kb=(\d+)/.exec(r.stderr);
  const out = JSON.parse(r.stdout) as { timings: Record<string, number>; files: string[] };
  if (!out.files.length || readFileSync(out.files[0]!).subarray(1, 4).toString() !== 'PNG') throw new Error('no PNG written');
  return { wallS, peakRssGiB: rss ? Number(rss[1]) / 2 ** 20 : NaN, nodes: out.timings };
}

const fmt = (r: Run) =>
  `${r.wallS.toFixed(1)} s (peak RSS ${r.peakRssGiB.toFixed(2)} GiB; ${Object.entries(NODE_NAMES).map(([id, name]) => `${name} ${((r.nodes[id] ?? 0) / 1000).toFixed(1)}`).join(', ')} s)`;

const summary: string[] = [];
for (const dtype of args.fp32 ? ['int8', 'fp32'] : ['int8']) {
  const cacheDir = join(work, `cache-${dtype}`);
  const cold = runOnce(dtype, cacheDir, 1);
  log(`${dtype} cold (empty model cache): ${fmt(cold)}`);
  const warm: Run[] = [];
  for (let i = 0; i < warmRuns; i++) {
    warm.push(runOnce(dtype, cacheDir, 2 + i));
    log(`${dtype} warm #${i + 1}: ${fmt(warm[i]!)}`);
  }
  const m = median(warm.map((w) => w.wallS));
  summary.push(`${dtype}: cold ${cold.wallS.toFixed(1)} s, warm median ${m.toFixed(1)} s of ${warm.length}${dtype === 'int8' ? ` (target < 30 s: ${m < 30 ? 'met' : 'missed'})` : ''}`);
}
reportLoad(log);
log(`512² SD1.5 + LCM-LoRA, 4 steps, cfg 1, one image per process: ${summary.join('; ')}`);
