import { mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { SD15_UNET } from '../../runtime/adapters/arch-tables.js';
import { loadResAdapter } from '../../runtime/adapters/resadapter.js';
import { ensureDemoIfReferenced } from '../../runtime/cli/run.js';
import { Executor } from '../../runtime/executor/executor.js';
import { validatePrompt } from '../../runtime/executor/validate.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import { checkpointKeyShapes } from '../../runtime/pipeline/adapter-loaders.js';
import { DEMO_CHECKPOINT, DEMO_RESADAPTER } from '../../runtime/models/synthetic/demo.js';
import { DEMO_SDXL_CHECKPOINT, DEMO_SDXL_RESADAPTER, writeResAdapterFor } from '../../runtime/models/synthetic/demo-sdxl.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import { exampleWorkflows } from '../../runtime/workflow/examples.js';
import { createRuntimeEnv } from '../../nodes/env.js';
import type { ClipValue, ConditioningValue, LatentValue, ModelValue } from '../../nodes/core/types.js';
import { shared } from '../adapters/helpers.js';
import { demoRuntime, loadWorkflowPrompt, shrink, type TestRuntime, execNode } from './helpers.js';

type Node = ApiPrompt[string];
const n = (class_type: string, inputs: Record<string, unknown>): Node => ({ class_type, inputs }) as Node;

async function execute(rt: TestRuntime, prompt: ApiPrompt) {
  const v = await validatePrompt(prompt, rt.registry);
  if (!v.ok) throw new Error(`invalid: ${JSON.stringify(v.node_errors)} ${v.error.message}`);
  return new Executor().run(v.graph);
}

function savedFiles(rt: TestRuntime, outputs: Record<string, Record<string, unknown[]>>): string[] {
  return Object.values(outputs).flatMap((ui) => ((ui.images ?? []) as Array<{ filename: string; subfolder: string }>).map((i) => join(rt.env.outputDir, i.subfolder, i.filename)));
}

// The ResAdapter side-by-sides; the base → refiner workflow has its own test (sdxl-refiner-workflow.test.ts).
const SDXL_FILES = Object.keys(exampleWorkflows()).filter((f) => f.startsWith('sdxl-resadapter-'));

describe('SDXL example workflows on the SDXL demo model', () => {
  let rt: TestRuntime;
  beforeAll(async () => {
    rt = await demoRuntime('resflow-sdxl-');
  });

  it('are the three SDXL + ResAdapter side-by-sides, positive via CLIPTextEncodeSDXL, negative via CLIPTextEncode', () => {
    expect(SDXL_FILES.sort()).toEqual(['sdxl-resadapter-txt2img-1024.json', 'sdxl-resadapter-txt2img-1536x640.json', 'sdxl-resadapter-txt2img-512.json']);
    for (const f of SDXL_FILES) {
      const { prompt } = loadWorkflowPrompt(f, rt.registry);
      expect(prompt['1']!.inputs.ckpt_name).toBe(DEMO_SDXL_CHECKPOINT);
      expect(prompt['2']!.inputs.resadapter_name).toBe(DEMO_SDXL_RESADAPTER);
      expect(prompt['4']!.class_type).toBe('CLIPTextEncodeSDXL');
      expect(prompt['5']!.class_type).toBe('CLIPTextEncode');
    }
  });

  for (const [file, w, h] of [
    ['sdxl-resadapter-txt2img-512.json', 512, 512],
    ['sdxl-resadapter-txt2img-1024.json', 1024, 1024],
    ['sdxl-resadapter-txt2img-1536x640.json', 1536, 640],
  ] as const) {
    it(`${file}: renders ${w}x${h}, base and ResAdapter differ`, async () => {
      const { prompt } = loadWorkflowPrompt(file, rt.registry);
      const r = await execute(rt, shrink(prompt, 1));
      expect(r.status, JSON.stringify(r.error?.exception_message)).toBe('success');
      const files = savedFiles(rt, r.outputs);
      const base = files.find((f) => f.includes('/base_'))!;
      const ra = files.find((f) => f.includes('/resadapter_'))!;
      const grid = files.find((f) => f.includes('/grid_'))!;
      expect(base).toContain(`sdxl-resadapter-${w}x${h}/`);
      expect(await sharp(base).metadata()).toMatchObject({ width: w, height: h });
      expect(await sharp(ra).metadata()).toMatchObject({ width: w, height: h });
      expect(await sharp(grid).metadata()).toMatchObject({ width: 2 * w + 8, height: h });
      const stats = await sharp(base).stats();
      expect(stats.channels.some((c) => c.stdev > 1)).toBe(true);
      const [a, b] = await Promise.all([sharp(base).raw().toBuffer(), sharp(ra).raw().toBuffer()]);
      expect(a.equals(b)).toBe(false);
    });
  }

  it('the CLI generates the SDXL demo for a workflow naming it', async () => {
    const env = createRuntimeEnv({ dataDir: mkdtempSync(join(tmpdir(), 'resflow-sdxl-cli-')) });
    await ensureDemoIfReferenced(exampleWorkflows()['sdxl-resadapter-txt2img-512.json']!, env);
    expect(env.folders.list('checkpoints')).toContain(DEMO_SDXL_CHECKPOINT);
    expect(env.folders.list('resadapters')).toContain(DEMO_SDXL_RESADAPTER);
  });
});

describe('ResAdapters on SDXL through the nodes', () => {
  let rt: TestRuntime;
  beforeAll(async () => {
    rt = await demoRuntime('resflow-sdxl-ra-');
    // An adapter with SD1.5's real layout (4 levels, width 320): what a user would wrongly pick.
    writeResAdapterFor(join(rt.env.folders.modelsDir, 'resadapters', 'fake-sd15'), SD15_UNET, { seed: 1 });
    const real = shared('resadapter', 'resadapter_v2_sd1.5');
    symlinkSync(real, join(rt.env.folders.modelsDir, 'resadapters', 'resadapter_v2_sd1.5'));
  });

  const sampled = (ckpt: string, model: Node): ApiPrompt => ({
    '1': n('CheckpointLoaderSimple', { ckpt_name: ckpt }),
    '3': model,
    '4': n('CLIPTextEncode', { text: 'a cat', clip: ['1', 1] }),
    '5': n('CLIPTextEncode', { text: '', clip: ['1', 1] }),
    '6': n('EmptyLatentImage', { width: 64, height: 64, batch_size: 1 }),
    '7': n('KSampler', { model: ['3', 0], seed: 1, steps: 1, cfg: 5, sampler_name: 'euler', scheduler: 'karras', positive: ['4', 0], negative: ['5', 0], latent_image: ['6', 0], denoise: 1 }),
    '8': n('VAEDecode', { samples: ['7', 0], vae: ['1', 2] }),
    '9': n('SaveImage', { images: ['8', 0], filename_prefix: 'ra' }),
  });
  const applied = (ckpt: string, adapter: string): ApiPrompt => ({
    ...sampled(ckpt, n('ApplyResAdapter', { model: ['1', 0], resadapter: ['2', 0], alpha: 1, norm_strength: 1 })),
    '2': n('LoadResAdapter', { resadapter_name: adapter }),
  });

  it('the SDXL demo adapter is 4 conv LoRA patches + every resnet norm, and renders', async () => {
    const ckpt = SafetensorsFile.open(rt.env.folders.resolve('checkpoints', DEMO_SDXL_CHECKPOINT));
    const a = loadResAdapter(rt.env.folders.resolve('resadapters', DEMO_SDXL_RESADAPTER), checkpointKeyShapes(ckpt));
    expect(a.family).toBe('sdxl');
    expect(a.patches).toHaveLength(4);
    // 1 res block per level: 3 down + 2 middle + 6 up resnets, norm1/norm2 weight and bias each.
    expect(a.norms.size).toBe(11 * 4);
    const r = await execute(rt, applied(DEMO_SDXL_CHECKPOINT, DEMO_SDXL_RESADAPTER));
    expect(r.status, r.error?.exception_message).toBe('success');
  });

  it('an SD1.5 adapter on the SDXL model is a node error naming the reason (ApplyResAdapter)', async () => {
    const r = await execute(rt, applied(DEMO_SDXL_CHECKPOINT, 'fake-sd15'));
    expect(r.status).toBe('error');
    expect(r.error!.node_id).toBe('3');
    expect(r.error!.exception_message).toMatch(/made for SD1\.5 \(4 UNet levels, width 320\) but the model is SDXL \(3 UNet levels, width 32\)/);
  });

  it('the same through ResAdapterLoader (ComfyUI-ResAdapter node)', async () => {
    const r = await execute(rt, sampled(DEMO_SDXL_CHECKPOINT, n('ResAdapterLoader', { model: ['1', 0], clip: ['1', 1], resadapter_name: 'fake-sd15', strength_model: 1, strength_clip: 1 })));
    expect(r.status).toBe('error');
    expect(r.error!.node_type).toBe('ResAdapterLoader');
    expect(r.error!.exception_message).toMatch(/made for SD1\.5.*but the model is SDXL/);
  });

  it('the released SD1.5 adapter is refused on SDXL too', async () => {
    const r = await execute(rt, applied(DEMO_SDXL_CHECKPOINT, 'resadapter_v2_sd1.5'));
    expect(r.status).toBe('error');
    expect(r.error!.exception_message).toMatch(/made for SD1\.5.*but the model is SDXL/);
  });

  it('and the reverse: the SDXL adapter on the SD1.5 demo model', async () => {
    const r = await execute(rt, applied(DEMO_CHECKPOINT, DEMO_SDXL_RESADAPTER));
    expect(r.status).toBe('error');
    expect(r.error!.exception_message).toMatch(/made for SDXL \(3 UNet levels, width 32\) but the model is a 2-level UNet/);
    // The SD1.5 demo still takes its own adapter: the refusal is about families, not a blanket rule.
    expect((await execute(rt, applied(DEMO_CHECKPOINT, DEMO_RESADAPTER))).status).toBe('success');
  });
});

describe('SDXL conditioning through the nodes', () => {
  let rt: TestRuntime;
  let model: ModelValue;
  let clip: ClipValue;
  const exec = (name: string, inputs: Record<string, unknown>) => execNode(rt.registry, name, inputs);
  const latent: LatentValue = { samples: { data: new Float32Array(4 * 16 * 16), shape: [1, 4, 16, 16] } };

  beforeAll(async () => {
    rt = await demoRuntime('resflow-sdxl-cond-');
    [model, clip] = (await exec('CheckpointLoaderSimple', { ckpt_name: DEMO_SDXL_CHECKPOINT })) as [ModelValue, ClipValue];
  });

  const sdxlEncode = async (sizes: Partial<Record<'width' | 'height' | 'crop_w' | 'crop_h' | 'target_width' | 'target_height', number>> = {}, c = clip) =>
    (await exec('CLIPTextEncodeSDXL', { clip: c, width: 128, height: 128, crop_w: 0, crop_h: 0, target_width: 128, target_height: 128, text_g: 'a red house', text_l: 'a red house', ...sizes }))[0] as ConditioningValue;
  const encode = async (text: string, c = clip) => (await exec('CLIPTextEncode', { text, clip: c }))[0] as ConditioningValue;
  const ksample = async (positive: ConditioningValue, negative: ConditioningValue, m = model) =>
    ((await exec('KSampler', { model: m, seed: 5, steps: 2, cfg: 6, sampler_name: 'euler', scheduler: 'karras', positive, negative, latent_image: latent, denoise: 1 }))[0] as LatentValue).samples.data;

  it('loads as family sdxl: SDXL schedule and latent scale, both encoders, pooled output without sizes', async () => {
    expect(model.family).toBe('sdxl');
    expect(model.sampling.latentFormat.scaleFactor).toBeCloseTo(0.13025, 6);
    expect(model.unet.base.config.admInChannels).toBe(128 + 6 * 256);
    expect(clip.family).toBe('sdxl');
    const c = await encode('a red house');
    expect(c.contextShape).toEqual([1, 77, 64 + 128]);
    expect(c.pooledShape).toEqual([1, 128]);
    expect(c.sizes).toBeUndefined();
    const s = await sdxlEncode({ crop_w: 8 });
    expect(s.sizes).toEqual({ width: 128, height: 128, cropW: 8, cropH: 0, targetWidth: 128, targetHeight: 128 });
  });

  it('CLIPTextEncodeSDXL sizes reach y: the latent-derived defaults match CLIPTextEncode, other sizes change the result', async () => {
    const neg = await encode('blurry');
    const plain = await ksample(await encode('a red house'), neg);
    // 16x16 latent -> ComfyUI's default sizes 128x128, no crop, target = size: the same y, the same result.
    expect(Array.from(await ksample(await sdxlEncode(), neg))).toEqual(Array.from(plain));
    for (const sizes of [{ target_width: 1024, target_height: 1024 }, { crop_w: 64 }, { width: 1024 }]) {
      const other = await ksample(await sdxlEncode(sizes), neg);
      const diff = other.reduce((m, v, i) => Math.max(m, Math.abs(v - plain[i]!)), 0);
      expect(diff, JSON.stringify(sizes)).toBeGreaterThan(1e-3);
    }
  });

  it('text_g and text_l go to their own encoders', async () => {
    const both = await sdxlEncode();
    const [c] = (await exec('CLIPTextEncodeSDXL', { clip, width: 128, height: 128, crop_w: 0, crop_h: 0, target_width: 128, target_height: 128, text_g: 'a red house', text_l: 'a dog' })) as [ConditioningValue];
    // Same bigG prompt: same pooled output; the CLIP-L half of the context changes, the bigG half does not.
    expect(Array.from(c.pooled!)).toEqual(Array.from(both.pooled!));
    const half = (v: ConditioningValue, from: number, to: number) => Array.from(v.context.filter((_, i) => i % 192 >= from && i % 192 < to));
    expect(half(c, 64, 192)).toEqual(half(both, 64, 192));
    expect(half(c, 0, 64)).not.toEqual(half(both, 0, 64));
  });

  it('CLIPSetLastLayer(-1) moves both encoders off the penultimate layer', async () => {
    const [last] = (await exec('CLIPSetLastLayer', { clip, stop_at_clip_layer: -1 })) as [ClipValue];
    expect(Array.from((await encode('a red house', last)).context)).not.toEqual(Array.from((await encode('a red house')).context));
  });

  it('mixing families fails with the cause, not a shape error from the session', async () => {
    const [sd1Model, sd1Clip] = (await exec('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT })) as [ModelValue, ClipValue];
    expect(sd1Model.family).toBe('sd1');
    await expect(sdxlEncode({}, sd1Clip)).rejects.toThrow(/needs the CLIP of an SDXL checkpoint/);
    const sd1Cond = await encode('a red house', sd1Clip);
    await expect(ksample(sd1Cond, sd1Cond)).rejects.toThrow(/positive conditioning is 64 wide but this SDXL model takes 192/);
    const xl = await encode('a red house');
    await expect(ksample(xl, xl, sd1Model)).rejects.toThrow(/192 wide but this SD1\.x model takes 64/);
  });
});
