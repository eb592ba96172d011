/**
 * ResAdapter cost on a full-size SD1.5 UNet (random F16 weights, real key layout):
 *   1. UNet step time with the released resadapter_v2_sd1.5 applied vs without (target ratio 1.00 ± 0.03);
 *   2. time to change its strength (a new handle + merged overrides) vs creating the session (target < 5%).
 *
 *   npx tsx bench/resadapter.bench.ts [--size 512] [--batch 2] [--steps 5] [--strengths 4] [--reuse-compiled]
 *
 * The checkpoint is written once to .cache/bench/ (about 2 GiB). Session creation is measured cold, as a
 * merge-and-rebuild design would pay it on every strength change (the external weight file of the ONNX
 * model written anew, in a scratch folder removed afterwards), and warm (that file already on disk);
 * `--reuse-compiled` keeps the compiled model in .cache/bench/resflow/ instead. A bench, not a test: it
 * asserts nothing beyond the session staying the same object, and prints medians, ratios and peak RSS.
 */
import { rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { releaseSession } from '../runtime/graph/session.js';
import { inferUnetConfig } from '../runtime/models/unet/config.js';
import { UnetModel } from '../runtime/models/unet/model.js';
import { WeightSet } from '../runtime/models/weights.js';
import { ensureSd15Checkpoint } from './lib.js';
import { SeededRandom } from '../runtime/models/synthetic/generate.js';
import { applyResAdapter } from '../runtime/pipeline/adapter-loaders.js';
import { LoraProductCache } from '../runtime/pipeline/adapter-merge.js';
import { PatchedUnet } from '../runtime/pipeline/patched-model.js';
import { SafetensorsFile } from '../runtime/safetensors/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    size: { type: 'string', default: '512' },
    batch: { type: 'string', default: '2' },
    steps: { type: 'string', default: '5' },
    strengths: { type: 'string', default: '4' },
    adapter: { type: 'string', default: resolve(root, '../shared/resadapter/resadapter_v2_sd1.5') },
    'reuse-compiled': { type: 'boolean', default: false },
  },
});
const size = Number(args.size);
const batch = Number(args.batch);
const steps = Number(args.steps);
if (!(size % 8 === 0 && size >= 64) || !(batch >= 1) || !(steps >= 1)) throw new Error('--size must be a multiple of 8 >= 64, --batch and --steps >= 1');

const cacheDir = join(root, '.cache', 'bench');
const scratch = args['reuse-compiled'] ? undefined : join(cacheDir, `onnx-scratch-${process.pid}`);
// UnetModel compiles with the default cache folder, which this variable moves.
process.env.RESFLOW_CACHE_DIR = scratch ?? process.env.RESFLOW_CACHE_DIR ?? join(cacheDir, 'resflow');
process.on('exit', () => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});
const ckpt = ensureSd15Checkpoint((s) => console.log(s));

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const ms = (x: number) => `${x.toFixed(1)} ms`;
const rssMb = () => (process.resourceUsage().maxRSS / 1024).toFixed(0);
const log = (s: string) => console.log(s);


const file = SafetensorsFile.open(ckpt);
const weights = new WeightSet(file, 'model.diffusion_model.');
const config = inferUnetConfig(weights, { numHeads: 8 }, file.metadata);
const unet = new UnetModel(weights, config);
const cache = new LoraProductCache(1024 * 1024 * 1024);
const base = PatchedUnet.of(unet, cache);

const t0 = performance.now();
const session = await unet.session(false);
const sessionMs = performance.now() - t0;
log(`session creation (${scratch ? 'cold: ONNX weights written' : `cache folder ${process.env.RESFLOW_CACHE_DIR}`}): ${ms(sessionMs)}, ${session.overridableNames().length} overridable weights, RSS peak ${rssMb()} MB`);

const rng = new SeededRandom(7);
const lat = size / 8;
const x = { data: rng.fillNormal(new Float32Array(batch * 4 * lat * lat), 0, 1), dims: [batch, 4, lat, lat] };
const ctx = { data: rng.fillNormal(new Float32Array(batch * 77 * 768), 0, 1), dims: [batch, 77, 768] };
const ts = new Float32Array(batch).fill(500);

const tLoad = performance.now();
const applied = applyResAdapter(base, args.adapter, 1);
const loadMs = performance.now() - tLoad;
let patched = applied.model;
const id = patched.adapters[0]!.id;
const tCold = performance.now();
patched.overrides();
const coldMs = performance.now() - tCold;
log(`resadapter: ${applied.adapter.patches.length} LoRA convs (rank ${applied.adapter.rank}), ${applied.adapter.norms.size} norms; load ${ms(loadMs)}, first merge ${ms(coldMs)} (products + base convs, ${(cache.sizeBytes / 2 ** 20).toFixed(0)} MiB cached)`);

async function step(h: PatchedUnet): Promise<number> {
  const s = performance.now();
  await h.eps(x, ts, ctx);
  return performance.now() - s;
}

log(`warm-up at ${size}x${size}, batch ${batch} ...`);
await step(base);
await step(patched);
// Interleaved so that drift (thermal, other processes) hits both sides alike.
const plain: number[] = [];
const withRa: number[] = [];
for (let i = 0; i < steps; i++) {
  plain.push(await step(base));
  withRa.push(await step(patched));
}
if ((await unet.session(false)) !== session) throw new Error('applying the ResAdapter compiled a new session');
const ratio = median(withRa) / median(plain);
log(`step ${size}x${size} b${batch}: without ${ms(median(plain))}, with ResAdapter ${ms(median(withRa))}, ratio ${ratio.toFixed(3)} (target 1.00 ± 0.03) ${Math.abs(ratio - 1) <= 0.03 ? 'OK' : 'MISS'}`);
log(`  samples without: ${plain.map((v) => v.toFixed(0)).join(' ')}; with: ${withRa.map((v) => v.toFixed(0)).join(' ')}`);

const changes: number[] = [];
const n = Number(args.strengths);
for (let i = 0; i < n; i++) {
  const s = performance.now();
  patched = patched.withStrength(id, 0.25 + (0.75 * (i + 1)) / n);
  patched.overrides();
  changes.push(performance.now() - s);
}
await step(patched);
if ((await unet.session(false)) !== session) throw new Error('a strength change compiled a new session');
const change = median(changes);
log(`strength change (new handle + merge, cache warm): median ${ms(change)} [${changes.map((v) => v.toFixed(0)).join(' ')}]`);
log(`  = ${((change / sessionMs) * 100).toFixed(2)}% of session creation ${ms(sessionMs)} (target < 5%) ${change / sessionMs < 0.05 ? 'OK' : 'MISS'}`);

const uncached = PatchedUnet.of(unet, new LoraProductCache(0)).withAdapter({ ...patched.adapters[0]!, id: 'cold' });
const tu = performance.now();
uncached.overrides();
log(`strength change with no cache (products recomputed, base re-read): ${ms(performance.now() - tu)}`);

// Warm creation: the same graph from the ONNX file on disk, after dropping the in-process session.
await releaseSession(session.hash);
const tw = performance.now();
const again = await new UnetModel(weights, config).session(false);
const warmMs = performance.now() - tw;
log(`session creation (warm: ONNX file on disk): ${ms(warmMs)}; strength change = ${((change / warmMs) * 100).toFixed(2)}% of it`);
await releaseSession(again.hash);
log(`peak RSS ${rssMb()} MB`);
