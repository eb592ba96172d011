import { copyFileSync, cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { execNode } from './helpers.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { Executor } from '../../runtime/executor/executor.js';
import { validatePrompt } from '../../runtime/executor/validate.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import { createCoreRegistry } from '../../nodes/core/index.js';
import { createRuntimeEnv } from '../../nodes/env.js';
import type { ClipValue, ConditioningValue } from '../../nodes/core/types.js';
import { closeness, readJson, shared } from '../adapters/helpers.js';
import type { TestRuntime } from './helpers.js';

/**
 * The ComfyUI conformance model (tiny SDXL, 16-wide UNet heads, 2-head text towers, a 2x VAE) through
 * CheckpointLoaderSimple, with the real CLIP tokenizer from resflow.config.json and head counts from a
 * sidecar: what a user with an odd SDXL-architecture model does.
 */

const DIR = shared('conformance-sdxl');
const TOKENIZER = shared('clip-tokenizer');
shared('conformance-sdxl', 'models', 'tiny-sdxl-a.safetensors');
shared('clip-tokenizer', 'vocab.json');
const CKPT = 'tiny-sdxl-a.safetensors';
type Node = ApiPrompt[string];
const n = (class_type: string, inputs: Record<string, unknown>): Node => ({ class_type, inputs }) as Node;

async function execute(rt: TestRuntime, prompt: ApiPrompt) {
  const v = await validatePrompt(prompt, rt.registry);
  if (!v.ok) throw new Error(`invalid: ${JSON.stringify(v.node_errors)} ${v.error.message}`);
  return new Executor().run(v.graph);
}

describe('the tiny SDXL conformance checkpoint through the nodes', () => {
  let rt: TestRuntime;
  let sidecar: string;
  const pipeline = readJson(join(DIR, 'pipeline-txt2img', 'case.json'));

  beforeAll(() => {
    const dataDir = mkdtempSync(join(tmpdir(), 'resflow-sdxl-tiny-'));
    writeFileSync(join(dataDir, 'resflow.config.json'), JSON.stringify({ tokenizerDirs: [TOKENIZER] }));
    mkdirSync(join(dataDir, 'models', 'checkpoints'), { recursive: true });
    copyFileSync(join(DIR, 'models', CKPT), join(dataDir, 'models', 'checkpoints', CKPT));
    cpSync(join(DIR, 'models', 'resadapter-sdxl-a'), join(dataDir, 'models', 'resadapters', 'resadapter-sdxl-a'), { recursive: true });
    sidecar = join(dataDir, 'models', 'checkpoints', 'tiny-sdxl-a.resflow.json');
    const env = createRuntimeEnv({ dataDir });
    rt = { env, registry: createCoreRegistry(env) };
  });

  const render: ApiPrompt = {
    '1': n('CheckpointLoaderSimple', { ckpt_name: CKPT }),
    '2': n('ResAdapterLoader', { model: ['1', 0], clip: ['1', 1], resadapter_name: 'resadapter-sdxl-a', strength_model: 1, strength_clip: 1 }),
    '4': n('CLIPTextEncodeSDXL', { clip: ['1', 1], width: 1024, height: 1024, crop_w: 0, crop_h: 0, target_width: 1024, target_height: 1024, text_g: 'a photo of a cat', text_l: 'a photo of a cat' }),
    '5': n('CLIPTextEncode', { text: 'blurry', clip: ['1', 1] }),
    '6': n('EmptyLatentImage', { width: 96, height: 64, batch_size: 1 }),
    '7': n('KSampler', { model: ['1', 0], seed: 1234, steps: 4, cfg: 5, sampler_name: 'dpmpp_2m', scheduler: 'karras', positive: ['4', 0], negative: ['5', 0], latent_image: ['6', 0], denoise: 1 }),
    '8': n('KSampler', { model: ['2', 0], seed: 1234, steps: 4, cfg: 5, sampler_name: 'dpmpp_2m', scheduler: 'karras', positive: ['4', 0], negative: ['5', 0], latent_image: ['6', 0], denoise: 1 }),
    '9': n('VAEDecode', { samples: ['7', 0], vae: ['1', 2] }),
    '10': n('VAEDecode', { samples: ['8', 0], vae: ['1', 2] }),
    '11': n('SaveImage', { images: ['9', 0], filename_prefix: 'tiny/base' }),
    '12': n('SaveImage', { images: ['10', 0], filename_prefix: 'tiny/resadapter' }),
  };

  it('without head counts the load fails naming the sidecar to write', async () => {
    const r = await execute(rt, render);
    expect(r.status).toBe('error');
    expect(r.error!.node_type).toBe('CheckpointLoaderSimple');
    expect(r.error!.exception_message).toMatch(/head (count|width).*tiny-sdxl-a\.resflow\.json/);
  });

  it('with a sidecar (values pasted from case.json) it loads and renders, base and ResAdapter', async () => {
    const m = pipeline.models.checkpoint;
    writeFileSync(sidecar, JSON.stringify({ unet_config: m.unet_config_comfy, clip_l_config: m.clip_l_config, clip_g_config: m.clip_g_config }, null, 1));
    const r = await execute(rt, render);
    expect(r.status, r.error?.exception_message).toBe('success');
    const files = Object.values(r.outputs).flatMap((ui) => (ui.images as Array<{ filename: string; subfolder: string }>).map((i) => join(rt.env.outputDir, i.subfolder, i.filename)));
    expect(files).toHaveLength(2);
    // Latent 12x8; this VAE upsamples by 2.
    for (const f of files) expect(await sharp(f).metadata()).toMatchObject({ width: 24, height: 16 });
    const [a, b] = await Promise.all(files.map((f) => sharp(f).raw().toBuffer()));
    expect(a!.equals(b!)).toBe(false);
    expect((await sharp(files[0]!).stats()).channels.some((c) => c.stdev > 1)).toBe(true);
  });

  it("CLIPTextEncodeSDXL from text gives ComfyUI's context and pooled output for the same prompt", async () => {
    const exec = (name: string, inputs: Record<string, unknown>) => execNode(rt.registry, name, inputs);
    const [, clip] = (await exec('CheckpointLoaderSimple', { ckpt_name: CKPT })) as [unknown, ClipValue];
    // The case's positive ids are "a photo of a cat" in the CLIP vocab.
    expect(pipeline.params.pos).toEqual([320, 1125, 539, 320, 2368]);
    const [c] = (await exec('CLIPTextEncodeSDXL', { ...render['4']!.inputs, clip })) as [ConditioningValue];
    const expected = SafetensorsFile.open(join(DIR, 'pipeline-txt2img', 'expected.safetensors'));
    const tol = pipeline.tolerance.default as { atol: number; rtol: number };
    for (const [name, got] of [
      ['cond', c.context],
      ['pooled_cond', c.pooled!],
    ] as const) {
      const r = closeness(got, expected.readFloat32(name), tol);
      expect(r.pass, `${name}: max diff ${r.maxDiff} > ${r.limit}`).toBe(true);
    }
    expect(c.sizes).toEqual({ width: 1024, height: 1024, cropW: 0, cropH: 0, targetWidth: 1024, targetHeight: 1024 });
  });
});
