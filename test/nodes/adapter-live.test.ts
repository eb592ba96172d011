/**
 * Adapters live through the node graph (the editor's path): changing ApplyResAdapter's alpha or LoraLoader's
 * strength re-runs those nodes but reuses the parsed adapter, its LoRA products and the UNet session, while
 * the picture still follows the new value. A file rewritten in place (same size, mtime kept) is parsed anew.
 */
import { closeSync, cpSync, openSync, readFileSync, statSync, utimesSync, writeSync } from 'node:fs';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCoreRegistry } from '../../nodes/core/index.js';
import { createRuntimeEnv, type RuntimeEnv } from '../../nodes/env.js';
import type { NodeRegistry } from '../../nodes/registry.js';
import { Executor } from '../../runtime/executor/executor.js';
import { validatePrompt } from '../../runtime/executor/validate.js';
import { sessionStats } from '../../runtime/graph/session.js';
import { DEMO_CHECKPOINT, DEMO_LCM_LORA, DEMO_RESADAPTER, ensureDemoModels } from '../../runtime/models/synthetic/demo.js';
import { ParsedAdapterCache, sharedAdapterCache } from '../../runtime/pipeline/adapter-cache.js';
import { sharedProductCache } from '../../runtime/pipeline/adapter-merge.js';
import { fileFingerprint } from '../../runtime/safetensors/index.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';

let env: RuntimeEnv;
let registry: NodeRegistry;
const executor = new Executor({ log: () => {} });

function prompt(alpha: number, strength: number, adapter = DEMO_RESADAPTER): ApiPrompt {
  return {
    '1': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: DEMO_CHECKPOINT } },
    '2': { class_type: 'LoadResAdapter', inputs: { resadapter_name: adapter } },
    '3': { class_type: 'ApplyResAdapter', inputs: { model: ['1', 0], resadapter: ['2', 0], alpha, norm_strength: 1 } },
    '4': { class_type: 'LoraLoader', inputs: { model: ['3', 0], clip: ['1', 1], lora_name: DEMO_LCM_LORA, strength_model: strength, strength_clip: strength } },
    '5': { class_type: 'CLIPTextEncode', inputs: { text: 'a lighthouse', clip: ['4', 1] } },
    '6': { class_type: 'CLIPTextEncode', inputs: { text: '', clip: ['4', 1] } },
    '7': { class_type: 'EmptyLatentImage', inputs: { width: 64, height: 64, batch_size: 1 } },
    '8': {
      class_type: 'KSampler',
      inputs: { model: ['4', 0], seed: 3, steps: 1, cfg: 4, sampler_name: 'euler', scheduler: 'normal', positive: ['5', 0], negative: ['6', 0], latent_image: ['7', 0], denoise: 1 },
    },
    '9': { class_type: 'VAEDecode', inputs: { samples: ['8', 0], vae: ['1', 2] } },
    '10': { class_type: 'PreviewImage', inputs: { images: ['9', 0] } },
  } as ApiPrompt;
}

async function run(p: ApiPrompt) {
  const v = await validatePrompt(p, registry);
  if (!v.ok) throw new Error(JSON.stringify(v.node_errors));
  const r = await executor.run(v.graph);
  expect(r.status, JSON.stringify(r.error)).toBe('success');
  const img = (r.outputs['10'] as { images: { filename: string; subfolder: string }[] }).images[0]!;
  const pixels = await sharp(join(env.tempDir, img.subfolder, img.filename)).raw().toBuffer();
  return { r, pixels };
}

const counters = () => ({ parses: sharedAdapterCache.misses, products: sharedProductCache.misses, sessions: sessionStats().sessions });

beforeAll(() => {
  env = createRuntimeEnv({ dataDir: mkdtempSync(join(tmpdir(), 'resflow-adapter-live-')) });
  ensureDemoModels(env.folders.modelsDir);
  registry = createCoreRegistry(env);
});

describe('alpha and strength changes through the executor', () => {
  it('reuse the parsed adapters, their LoRA products and the session, and still change the picture', async () => {
    const first = await run(prompt(1, 1));
    const before = counters();
    const seen = [first.pixels];
    for (const alpha of [0.25, 0.5, 1.5]) {
      const { r, pixels } = await run(prompt(alpha, 1));
      expect(r.executed).toContain('3');
      expect(r.executed).not.toContain('1');
      seen.push(pixels);
    }
    for (const strength of [0.5, 0]) {
      const { r, pixels } = await run(prompt(1, strength));
      expect(r.executed).toContain('4');
      seen.push(pixels);
    }
    expect(counters()).toEqual(before);
    // Every value renders differently.
    const distinct = new Set(seen.map((p) => p.toString('base64')));
    expect(distinct.size).toBe(seen.length);
    // Back to the first values: the same picture as the first run.
    const again = await run(prompt(1, 1, DEMO_RESADAPTER));
    expect(again.pixels.equals(first.pixels)).toBe(true);
  }, 120_000);

  it('parse an adapter file again when its content changes, even with size and mtime kept', async () => {
    const dir = join(env.folders.modelsDir, 'resadapters', 'rewritten');
    cpSync(join(env.folders.modelsDir, 'resadapters', DEMO_RESADAPTER), dir, { recursive: true });
    const file = join(dir, 'pytorch_lora_weights.safetensors');
    const stamp = new Date('2026-01-02T03:04:05Z');
    utimesSync(file, stamp, stamp);
    await run(prompt(1, 1, 'rewritten'));
    const parses = sharedAdapterCache.misses;
    await run(prompt(0.8, 1, 'rewritten'));
    expect(sharedAdapterCache.misses).toBe(parses);

    const st = statSync(file);
    const before = fileFingerprint(file);
    const bytes = readFileSync(file);
    const headerLen = Number(bytes.readBigUInt64LE(0));
    // Scale every float of the data section by 2 (same bytes count, still a valid file), keep the mtime.
    const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset + 8 + headerLen, bytes.byteOffset + bytes.length));
    for (let i = 0; i < data.length; i++) data[i] = data[i]! * 2;
    const fd = openSync(file, 'r+');
    writeSync(fd, new Uint8Array(data.buffer), 0, data.byteLength, 8 + headerLen);
    closeSync(fd);
    utimesSync(file, stamp, stamp);
    expect(statSync(file).size).toBe(st.size);
    expect(statSync(file).mtimeMs).toBe(st.mtimeMs);
    expect(fileFingerprint(file)).not.toBe(before);

    await run(prompt(0.6, 1, 'rewritten'));
    expect(sharedAdapterCache.misses).toBe(parses + 1);
  }, 120_000);
});

describe('fileFingerprint and the parsed-adapter cache', () => {
  it('fingerprints header and sampled data, not the mtime', () => {
    const dir = mkdtempSync(join(tmpdir(), 'resflow-fp-'));
    const a = join(dir, 'a.bin');
    const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 7) & 255);
    writeFileSync(a, big);
    const fp = fileFingerprint(a);
    expect(fp).toMatch(/^[0-9a-f]{32}$/);
    utimesSync(a, new Date(1000), new Date(1000));
    expect(fileFingerprint(a)).toBe(fp);
    big[100] ^= 1; // in the header
    writeFileSync(a, big);
    const fp2 = fileFingerprint(a);
    expect(fp2).not.toBe(fp);
    big[big.length - 10] ^= 1; // in the last sample
    writeFileSync(a, big);
    expect(fileFingerprint(a)).not.toBe(fp2);
  });

  it('keeps entries within its byte budget, least recently used out first', () => {
    const c = new ParsedAdapterCache(100);
    let computed = 0;
    const get = (k: string, bytes: number) => c.get(k, () => (computed++, { k }), () => bytes);
    const a = get('a', 40);
    get('b', 40);
    expect(get('a', 40)).toBe(a); // hit, now most recent
    get('c', 40); // evicts b
    expect(c.sizeBytes).toBe(80);
    expect(c.size).toBe(2);
    expect(computed).toBe(3);
    get('b', 40);
    expect(computed).toBe(4);
    get('huge', 1000); // never stored
    expect(c.sizeBytes).toBeLessThanOrEqual(100);
    expect(c.hits).toBe(1);
  });
});
