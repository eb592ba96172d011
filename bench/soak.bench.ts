/**
 * Soak: days of use compressed. Drives the HTTP server (as the editor and API clients do) through 200 prompts
 * that switch between 3 checkpoints, change a LoRA's strength, a ResAdapter's alpha and toggle a ControlNet,
 * and prints RSS and cache sizes as it goes. Both must level off: RSS after the run ≤ 1.2 × RSS after the
 * first full cycle (every checkpoint × ControlNet × LoRA combination seen once).
 *
 *   npx tsx bench/soak.bench.ts [--prompts 200] [--size 64] [--steps 2]
 *
 * Demo-size models (the embedded demo checkpoint and two variants with other weights), so it runs in minutes;
 * the demo models compile in memory, so the on-disk ONNX cache stays empty and sessions are the cache to watch.
 */
import { copyFileSync, mkdtempSync, openSync, readSync, closeSync, writeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createCoreRegistry } from '../nodes/core/index.js';
import { createRuntimeEnv } from '../nodes/env.js';
import { listCacheEntries } from '../runtime/graph/disk-cache.js';
import { defaultCacheDir, sessionStats } from '../runtime/graph/session.js';
import { DEMO_CHECKPOINT, DEMO_CONTROLNET, DEMO_INPUT_IMAGE, DEMO_LCM_LORA, DEMO_RESADAPTER, ensureDemoInput, ensureDemoModels } from '../runtime/models/synthetic/demo.js';
import { sharedAdapterCache } from '../runtime/pipeline/adapter-cache.js';
import { sharedProductCache } from '../runtime/pipeline/adapter-merge.js';
import { startServer } from '../runtime/server/index.js';
import { reportLoad } from './lib.js';

const { values: args } = parseArgs({ options: { prompts: { type: 'string', default: '200' }, size: { type: 'string', default: '64' }, steps: { type: 'string', default: '2' } } });
const total = Number(args.prompts);
const size = Number(args.size);
const steps = Number(args.steps);
const log = (s: string) => console.log(s);
reportLoad(log);

const dataDir = mkdtempSync(join(tmpdir(), 'resflow-soak-'));
process.env.RESFLOW_CACHE_DIR = join(dataDir, 'cache');
process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));
const env = createRuntimeEnv({ dataDir });
const paths = ensureDemoModels(env.folders.modelsDir);
await ensureDemoInput(env.inputDir);

/** A checkpoint of the same layout with other weights: one mantissa bit flipped every 4 KiB of tensor data. */
function variant(name: string, salt: number): string {
  const target = join(env.folders.modelsDir, 'checkpoints', name);
  copyFileSync(paths.checkpoint, target);
  const fd = openSync(target, 'r+');
  const head = Buffer.alloc(8);
  readSync(fd, head, 0, 8, 0);
  const start = 8 + Number(head.readBigUInt64LE(0));
  const b = Buffer.alloc(1);
  for (let pos = start + salt * 2; ; pos += 4096) {
    if (readSync(fd, b, 0, 1, pos) !== 1) break;
    b[0]! ^= 1;
    writeSync(fd, b, 0, 1, pos);
  }
  closeSync(fd);
  return name;
}
const checkpoints = [DEMO_CHECKPOINT, variant('soak-b.safetensors', 1), variant('soak-c.safetensors', 2)];

const registry = createCoreRegistry(env);
const server = await startServer({ env, registry, port: 0, log: () => {}, staticDir: join(dataDir, 'no-static') });

/**
 * Prompt i: checkpoint i mod 3, ControlNet on/off, LoRA strength 0/0.5/1, ResAdapter alpha 0.5/0.75/1, nested so
 * that the first CYCLE prompts meet every combination once; the seed is new every prompt, as a user's is.
 */
const CYCLE = 3 * 2 * 3 * 3;
function prompt(i: number): Record<string, unknown> {
  const control = Math.floor(i / 3) % 2 === 1;
  const strength = [0, 0.5, 1][Math.floor(i / 6) % 3]!;
  const alpha = [0.5, 0.75, 1][Math.floor(i / 18) % 3]!;
  const p: Record<string, { class_type: string; inputs: Record<string, unknown> }> = {
    '1': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: checkpoints[i % 3] } },
    '2': { class_type: 'LoadResAdapter', inputs: { resadapter_name: DEMO_RESADAPTER } },
    '3': { class_type: 'ApplyResAdapter', inputs: { model: ['1', 0], resadapter: ['2', 0], alpha, norm_strength: 1 } },
    '4': { class_type: 'LoraLoader', inputs: { model: ['3', 0], clip: ['1', 1], lora_name: DEMO_LCM_LORA, strength_model: strength, strength_clip: strength } },
    '5': { class_type: 'CLIPTextEncode', inputs: { text: `a lighthouse, take ${i % 5}`, clip: ['4', 1] } },
    '6': { class_type: 'CLIPTextEncode', inputs: { text: 'blurry', clip: ['4', 1] } },
    '7': { class_type: 'EmptyLatentImage', inputs: { width: size, height: size, batch_size: 1 } },
    '8': {
      class_type: 'KSampler',
      inputs: { model: ['4', 0], seed: i, steps, cfg: 4, sampler_name: 'euler', scheduler: 'normal', positive: [control ? '12' : '5', 0], negative: [control ? '12' : '6', control ? 1 : 0], latent_image: ['7', 0], denoise: 1 },
    },
    '9': { class_type: 'VAEDecode', inputs: { samples: ['8', 0], vae: ['1', 2] } },
    '10': { class_type: 'PreviewImage', inputs: { images: ['9', 0] } },
  };
  if (control) {
    p['11'] = { class_type: 'ControlNetLoader', inputs: { control_net_name: DEMO_CONTROLNET } };
    p['13'] = { class_type: 'LoadImage', inputs: { image: DEMO_INPUT_IMAGE } };
    p['12'] = { class_type: 'ControlNetApplyAdvanced', inputs: { positive: ['5', 0], negative: ['6', 0], control_net: ['11', 0], image: ['13', 0], strength: 0.8, start_percent: 0, end_percent: 1 } };
  }
  return p;
}

async function runPrompt(i: number): Promise<void> {
  const res = await fetch(`${server.url}/prompt`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: prompt(i), client_id: 'soak' }) });
  const body = (await res.json()) as { prompt_id?: string; error?: unknown; node_errors?: unknown };
  if (!res.ok || !body.prompt_id) throw new Error(`prompt ${i} refused: ${JSON.stringify(body)}`);
  for (;;) {
    const h = (await (await fetch(`${server.url}/history/${body.prompt_id}`)).json()) as Record<string, { status: { status_str: string; messages: unknown } }>;
    const entry = h[body.prompt_id];
    if (entry) {
      if (entry.status.status_str !== 'success') throw new Error(`prompt ${i} failed: ${JSON.stringify(entry.status.messages).slice(0, 2000)}`);
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MB`;
function snapshot(i: number) {
  const s = sessionStats();
  const disk = listCacheEntries(defaultCacheDir()).reduce((n, e) => n + e.bytes, 0);
  const exec = server.executor.cacheStats();
  return {
    i,
    rss: process.memoryUsage().rss,
    line:
      `${String(i).padStart(4)} prompts  RSS ${mb(process.memoryUsage().rss).padStart(7)}  heap ${mb(process.memoryUsage().heapUsed).padStart(6)}  ` +
      `sessions ${s.sessions} (${s.loaded} loaded, ${mb(s.weightBytes)})  executor cache ${mb(exec.bytes)} / ${exec.entries} entries  ` +
      `adapters ${mb(sharedAdapterCache.sizeBytes)}  LoRA products ${mb(sharedProductCache.sizeBytes)}  ONNX disk cache ${mb(disk)}`,
  };
}

log(`soak: ${total} prompts through ${server.url}, ${size}² image, ${steps} steps; 3 checkpoints × ControlNet on/off × LoRA strength 0/0.5/1 × ResAdapter alpha 0.5/0.75/1 (all ${CYCLE} combinations per cycle), a new seed every prompt`);
const t0 = performance.now();
let afterCycle = 0;
const rows: number[] = [];
for (let i = 0; i < total; i++) {
  await runPrompt(i);
  if (i + 1 === CYCLE) afterCycle = process.memoryUsage().rss;
  if ((i + 1) % 10 === 0 || (i + 1) % CYCLE === 0 || i + 1 === total) {
    const snap = snapshot(i + 1);
    rows.push(snap.rss);
    log(snap.line);
  }
}
const end = process.memoryUsage().rss;
log(`${total} prompts in ${((performance.now() - t0) / 1000).toFixed(0)} s; RSS after the first full cycle (${CYCLE} prompts) ${mb(afterCycle)}, after the run ${mb(end)}: ratio ${(end / afterCycle).toFixed(2)} (target ≤ 1.2)`);
log(`executor output cache budget ${mb(server.executor.cacheStats().budgetBytes)}: what still grows after the first cycle is each prompt's own outputs (new seed), kept until that budget`);
await server.close();
process.exit(end <= 1.2 * afterCycle ? 0 : 1);
