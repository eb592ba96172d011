/**
 * Adapters live, measured on the editor's path: the executor runs LoadCheckpoint → LoadResAdapter →
 * ApplyResAdapter(alpha) → [LoraLoader(strength)] → CLIPTextEncode ×2 → KSampler → VAEDecode → PreviewImage, and
 * the sweep changes only alpha (then only the LoRA strength) between runs, as dragging the widget does.
 *
 *   npx tsx bench/adapter-live.bench.ts [--model sd15|demo] [--size 128] [--alphas 10]
 *
 * `sd15` (default): the full-size random SD1.5 checkpoint of bench/lib.ts with the released
 * resadapter_v2_sd1.5 from the shared data; `demo`: the demo models (seconds, for a quick look). The cost of
 * an alpha change is the extra time of a run that changes alpha over one that changes only the seed (both
 * re-run the sampler and the decode), compared to one UNet session creation, measured in the same process as
 * the first run's extra KSampler time (cold: the ONNX weight file is written to a scratch cache folder).
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createCoreRegistry } from '../nodes/core/index.js';
import { createRuntimeEnv } from '../nodes/env.js';
import { Executor } from '../runtime/executor/executor.js';
import { validatePrompt } from '../runtime/executor/validate.js';
import { sessionStats } from '../runtime/graph/session.js';
import { DEMO_CHECKPOINT, DEMO_LCM_LORA, DEMO_RESADAPTER, ensureDemoModels } from '../runtime/models/synthetic/demo.js';
import { sharedAdapterCache } from '../runtime/pipeline/adapter-cache.js';
import { mergeTimings, sharedProductCache } from '../runtime/pipeline/adapter-merge.js';
import type { ApiPrompt } from '../runtime/workflow/api-schema.js';
import { ensureSd15Checkpoint, median, peakRssBytes, gib, reportLoad, ROOT } from './lib.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'sd15' },
    size: { type: 'string', default: '128' },
    alphas: { type: 'string', default: '10' },
  },
});
const size = Number(args.size);
const nAlphas = Number(args.alphas);
const log = (s: string) => console.log(s);
reportLoad(log);

const dataDir = mkdtempSync(join(tmpdir(), 'resflow-adapter-live-'));
// Cold session creation: compiled models go to a scratch cache folder removed at exit.
process.env.RESFLOW_CACHE_DIR = join(dataDir, 'cache');
process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));
const env = createRuntimeEnv({ dataDir });
const models = env.folders.modelsDir;
let ckptName: string;
let adapterName: string;
let loraName: string | undefined;
if (args.model === 'demo') {
  ensureDemoModels(models);
  [ckptName, adapterName, loraName] = [DEMO_CHECKPOINT, DEMO_RESADAPTER, DEMO_LCM_LORA];
} else {
  const ckpt = ensureSd15Checkpoint(log);
  for (const d of ['checkpoints', 'resadapters', 'tokenizers']) mkdirSync(join(models, d), { recursive: true });
  symlinkSync(resolve(ROOT, '../shared/clip-tokenizer'), join(models, 'tokenizers', 'clip-vit-large-patch14'));
  symlinkSync(ckpt, join(models, 'checkpoints', 'sd15.safetensors'));
  symlinkSync(resolve(ROOT, '../shared/resadapter/resadapter_v2_sd1.5'), join(models, 'resadapters', 'resadapter_v2_sd1.5'));
  [ckptName, adapterName, loraName] = ['sd15.safetensors', 'resadapter_v2_sd1.5', undefined];
}
const registry = createCoreRegistry(env);
const executor = new Executor({ log: () => {} });

function prompt(alpha: number, seed: number, strength: number): ApiPrompt {
  const model: [string, number] = loraName ? ['4', 0] : ['3', 0];
  const clip: [string, number] = loraName ? ['4', 1] : ['1', 1];
  const p: ApiPrompt = {
    '1': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: ckptName } },
    '2': { class_type: 'LoadResAdapter', inputs: { resadapter_name: adapterName } },
    '3': { class_type: 'ApplyResAdapter', inputs: { model: ['1', 0], resadapter: ['2', 0], alpha, norm_strength: 1 } },
    '5': { class_type: 'CLIPTextEncode', inputs: { text: 'a lighthouse at dusk', clip } },
    '6': { class_type: 'CLIPTextEncode', inputs: { text: '', clip } },
    '7': { class_type: 'EmptyLatentImage', inputs: { width: size, height: size, batch_size: 1 } },
    '8': {
      class_type: 'KSampler',
      inputs: { model, seed, steps: 1, cfg: 5, sampler_name: 'euler', scheduler: 'normal', positive: ['5', 0], negative: ['6', 0], latent_image: ['7', 0], denoise: 1 },
    },
    '9': { class_type: 'VAEDecode', inputs: { samples: ['8', 0], vae: ['1', 2] } },
    '10': { class_type: 'PreviewImage', inputs: { images: ['9', 0] } },
  } as ApiPrompt;
  if (loraName) p['4'] = { class_type: 'LoraLoader', inputs: { model: ['3', 0], clip: ['1', 1], lora_name: loraName, strength_model: strength, strength_clip: strength } } as ApiPrompt[string];
  return p;
}

async function run(p: ApiPrompt) {
  const v = await validatePrompt(p, registry);
  if (!v.ok) throw new Error(JSON.stringify(v.node_errors));
  const t0 = performance.now();
  const r = await executor.run(v.graph);
  if (r.status !== 'success') throw new Error(`run failed: ${JSON.stringify(r.error ?? r.interrupted)}`);
  return { ms: performance.now() - t0, r };
}

const ms = (x: number) => `${x.toFixed(0)} ms`;
log(`model: ${args.model === 'demo' ? 'demo (tiny)' : 'full-size SD1.5 (random F16 weights) + resadapter_v2_sd1.5'}, ${size}² image, 1 step, cfg 5`);

const first = await run(prompt(1, 1, 1));
const sessionsAfterFirst = sessionStats().sessions;
// Warm reference: the same graph with only the seed changed (sampler, decode and preview re-run).
const seedRuns: number[] = [];
const seedSampler: number[] = [];
for (let i = 0; i < 2; i++) {
  const { ms: t, r } = await run(prompt(1, 100 + i, 1));
  seedRuns.push(t);
  seedSampler.push(r.timings['8']!);
}
const sessionMs = first.r.timings['8']! - median(seedSampler);
log(`first run ${ms(first.ms)}; its KSampler ${ms(first.r.timings['8']!)} vs warm ${ms(median(seedSampler))} → one UNet session creation (cold) ≈ ${ms(sessionMs)}`);
log(`seed-only change: ${ms(median(seedRuns))} per run (median of ${seedRuns.length})`);

const adapterMisses0 = sharedAdapterCache.misses;
const productMisses0 = sharedProductCache.misses;
// What an alpha change adds on the editor's path: the ApplyResAdapter node plus the merge of the adapter's
// weights at the new alpha (done when the sampler asks the new model handle for its weights). Timed directly,
// since whole-run differences drown in the sampler's own variance on a shared machine.
const costs: number[] = [];
const runs: number[] = [];
for (let i = 0; i < nAlphas; i++) {
  const alpha = Math.round((0.1 + (1.8 * i) / Math.max(1, nAlphas - 1)) * 100) / 100;
  const merge0 = mergeTimings.totalMs;
  const { ms: t, r } = await run(prompt(alpha, 100, 1));
  if (!r.executed.includes('3') || r.executed.includes('1')) throw new Error('the alpha change should re-run ApplyResAdapter and not the checkpoint loader');
  const cost = r.timings['3']! + (mergeTimings.totalMs - merge0);
  costs.push(cost);
  runs.push(t);
  log(`  alpha ${alpha.toFixed(2)}: ApplyResAdapter ${ms(r.timings['3']!)} + merge ${ms(mergeTimings.totalMs - merge0)} = ${ms(cost)} (${((100 * cost) / sessionMs).toFixed(2)} % of a session creation); whole run ${ms(t)}`);
}
log(`alpha change (${nAlphas} values): median ${ms(median(costs))}, worst ${ms(Math.max(...costs))} = ${((100 * median(costs)) / sessionMs).toFixed(2)} % / ${((100 * Math.max(...costs)) / sessionMs).toFixed(2)} % of one session creation (target < 5 %)`);
log(`  adapter file parses during the sweep: ${sharedAdapterCache.misses - adapterMisses0}; LoRA products recomputed: ${sharedProductCache.misses - productMisses0}; sessions ${sessionsAfterFirst} → ${sessionStats().sessions}`);

if (loraName) {
  const loraCosts: number[] = [];
  for (let i = 0; i < 5; i++) {
    const merge0 = mergeTimings.totalMs;
    const { r } = await run(prompt(1, 100, 0.2 + 0.2 * i));
    loraCosts.push(r.timings['4']! + (mergeTimings.totalMs - merge0));
  }
  log(`LoRA strength change (5 values): LoraLoader + merges ${ms(median(loraCosts))} median (text encoding re-runs too)`);
}
log(`peak RSS ${gib(peakRssBytes())}`);
