import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLIP_L_TOKENIZER } from '../../runtime/pipeline/sd1-loader.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import { createRuntimeEnv } from '../../nodes/env.js';
import { createCoreRegistry } from '../../nodes/core/index.js';
import type { NodeRegistry } from '../../nodes/registry.js';
import type { NodeContext } from '../../nodes/spec.js';
import type { ClipValue, ConditioningValue, LatentValue, ModelValue } from '../../nodes/core/types.js';
import { closeness, readJson, shared } from '../adapters/helpers.js';

const NEXT = shared('conformance-sdxl-next');
const BASE = 'tiny-sdxl-a.safetensors';
const REFINER = 'tiny-sdxl-refiner-a.safetensors';
const CONTROLNET = 'controlnet-sdxl-a-diffusers.safetensors';

function sidecar(dir: string, file: string, m: any): void {
  const s: Record<string, unknown> = { unet_config: { num_head_channels: m.unet_config_comfy.num_head_channels }, clip_g_config: m.clip_g_config };
  if (m.clip_l_config) s.clip_l_config = m.clip_l_config;
  writeFileSync(join(dir, file.replace(/\.safetensors$/, '.resflow.json')), JSON.stringify(s));
}

/** A data folder with the tiny SDXL base and refiner (each with its head/config sidecar) and the tokenizer. */
function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'resflow-sdxl-refiner-'));
  const ck = join(dir, 'models', 'checkpoints');
  mkdirSync(ck, { recursive: true });
  mkdirSync(join(dir, 'models', 'tokenizers'), { recursive: true });
  symlinkSync(shared('conformance-sdxl', 'models', BASE), join(ck, BASE));
  symlinkSync(join(NEXT, 'models', REFINER), join(ck, REFINER));
  symlinkSync(shared('clip-tokenizer'), join(dir, 'models', 'tokenizers', CLIP_L_TOKENIZER));
  mkdirSync(join(dir, 'models', 'controlnet'), { recursive: true });
  symlinkSync(join(NEXT, 'models', CONTROLNET), join(dir, 'models', 'controlnet', CONTROLNET));
  writeFileSync(join(dir, 'models', 'controlnet', CONTROLNET.replace(/\.safetensors$/, '.resflow.json')), JSON.stringify({ unet_config: { num_head_channels: 16 } }));
  const models = readJson(join(NEXT, 'refiner-two-stage', 'case.json')).models;
  sidecar(ck, BASE, models.checkpoint);
  sidecar(ck, REFINER, models.refiner);
  return dir;
}

const ctx: NodeContext = { nodeId: 't', promptId: 't', signal: new AbortController().signal, progress: () => {}, log: () => {} };

async function run(registry: NodeRegistry, node: string, inputs: Record<string, unknown>): Promise<unknown[]> {
  const def = registry.get(node);
  if (!def) throw new Error(`no node ${node}`);
  const out = await def.spec.execute(inputs, ctx);
  return (Array.isArray(out) ? out : (out as { result: unknown[] }).result) as unknown[];
}

function expectClose(actual: ArrayLike<number>, expected: Float32Array, atol: number, rtol: number): void {
  const r = closeness(Float32Array.from(actual), expected, { atol, rtol });
  expect(r.pass, JSON.stringify(r)).toBe(true);
}

describe('SDXL refiner through the nodes (ComfyUI numbers from conformance-sdxl-next)', () => {
  let registry: NodeRegistry;
  let refiner: [ModelValue, ClipValue, unknown];
  let env: ReturnType<typeof createRuntimeEnv>;
  beforeAll(async () => {
    env = createRuntimeEnv({ dataDir: dataDir() });
    registry = createCoreRegistry(env);
    refiner = (await run(registry, 'CheckpointLoaderSimple', { ckpt_name: REFINER })) as [ModelValue, ClipValue, unknown];
  });

  it('CheckpointLoaderSimple detects the refiner; CLIPTextEncodeSDXLRefiner gives bigG-only cond and pooled', async () => {
    expect(refiner[0].family).toBe('sdxl-refiner');
    expect(refiner[1].family).toBe('sdxl-refiner');
    const c = readJson(join(NEXT, 'refiner-clip', 'case.json')).params.conds[0];
    const expected = SafetensorsFile.open(join(NEXT, 'refiner-clip', 'expected.safetensors'));
    const [cond] = (await run(registry, 'CLIPTextEncodeSDXLRefiner', { clip: refiner[1], text: c.text, ...c.node_args })) as [ConditioningValue];
    expectClose(cond.context, expected.readFloat32(`${c.name}/cond`), 1e-4, 1e-4);
    expectClose(cond.pooled!, expected.readFloat32(`${c.name}/pooled`), 1e-4, 1e-4);
    expect(cond.refiner).toEqual({ aestheticScore: 6, width: 1024, height: 1024 });
    await expect(run(registry, 'CLIPTextEncodeSDXL', { clip: refiner[1], width: 1024, height: 1024, crop_w: 0, crop_h: 0, target_width: 1024, target_height: 1024, text_g: 'x', text_l: 'x' })).rejects.toThrow(/SDXL checkpoint/);
  });

  it('the one-encoder refiner CLIP merges like any other; family checks name the node and the family', async () => {
    const clip = refiner[1];
    const [merged] = (await run(registry, 'CLIPMergeSimple', { clip1: clip, clip2: clip, ratio: 0.3 })) as [ClipValue];
    expect(merged.family).toBe('sdxl-refiner');
    expect(merged.encoders.map((e) => e.spec.name)).toEqual(['clip_g']);
    expect(merged.encoders[0]!.encoder).not.toBe(clip.encoders[0]!.encoder);
    // 0.3·W + 0.7·W = W: the merged encoder conditions as the original does.
    const [a] = (await run(registry, 'CLIPTextEncode', { clip: merged, text: 'a lighthouse at dusk' })) as [ConditioningValue];
    const [b] = (await run(registry, 'CLIPTextEncode', { clip, text: 'a lighthouse at dusk' })) as [ConditioningValue];
    expectClose(a.context, b.context, 1e-5, 1e-5);
    expectClose(a.pooled!, b.pooled!, 1e-5, 1e-5);
    const [baseModel, baseClip] = (await run(registry, 'CheckpointLoaderSimple', { ckpt_name: BASE })) as [ModelValue, ClipValue, unknown];
    await expect(run(registry, 'CLIPTextEncodeSDXLRefiner', { clip: baseClip, ascore: 6, width: 1024, height: 1024, text: 'x' })).rejects.toThrow(
      /^CLIPTextEncodeSDXLRefiner needs the CLIP of an SDXL refiner checkpoint .*this is the CLIP of an SDXL checkpoint/,
    );
    await expect(run(registry, 'CLIPMergeSimple', { clip1: clip, clip2: baseClip, ratio: 0.5 })).rejects.toThrow(/^CLIPMergeSimple: cannot merge/);
    // CheckpointSave writes the refiner's own layout: every key of the loaded file, same values.
    await run(registry, 'CheckpointSave', { model: refiner[0], clip: merged, vae: refiner[2], filename_prefix: 'checkpoints/refiner' });
    const saved = SafetensorsFile.open(join(env.outputDir, 'checkpoints', 'refiner_00001_.safetensors'));
    const original = SafetensorsFile.open(join(NEXT, 'models', REFINER));
    expect([...saved.keys()].sort()).toEqual([...original.keys()].sort());
    for (const k of ['conditioner.embedders.0.model.ln_final.weight', 'model.diffusion_model.label_emb.0.0.weight', 'first_stage_model.decoder.conv_in.weight']) {
      expectClose(saved.readFloat32(k), original.readFloat32(k), 1e-6, 1e-6);
    }
    await expect(run(registry, 'DiffControlNetLoader', { model: baseModel, control_net_name: 'any.safetensors' })).rejects.toThrow(
      /^DiffControlNetLoader: SDXL models have no diff ControlNet layout \(diff ControlNets exist for SD1\.x models\)/,
    );
  });

  it("base -> refiner with two KSamplerAdvanced nodes reproduces ComfyUI's refiner example", async () => {
    const cj = readJson(join(NEXT, 'refiner-two-stage', 'case.json'));
    const p = cj.params;
    const r = p.runs.find((x: any) => x.name === 'example');
    const expected = SafetensorsFile.open(join(NEXT, 'refiner-two-stage', 'expected.safetensors'));
    const [baseModel, baseClip] = (await run(registry, 'CheckpointLoaderSimple', { ckpt_name: BASE })) as [ModelValue, ClipValue, unknown];
    const enc = async (clip: ClipValue, text: string) => ((await run(registry, 'CLIPTextEncode', { clip, text })) as [ConditioningValue])[0];
    const [latent] = (await run(registry, 'EmptyLatentImage', { width: 64, height: 64, batch_size: 1 })) as [LatentValue];
    const common = { steps: r.steps, cfg: r.cfg, sampler_name: r.sampler, scheduler: r.scheduler, noise_seed: r.seed };
    const [stage1] = (await run(registry, 'KSamplerAdvanced', {
      ...common,
      model: baseModel,
      positive: await enc(baseClip, p.texts.positive),
      negative: await enc(baseClip, p.texts.negative),
      latent_image: latent,
      ...r.base,
    })) as [LatentValue];
    const tol = (k: string) => cj.outputs.tensors[k]?.tolerance ?? cj.tolerance.default;
    const t1 = tol('example/stage1/samples');
    expectClose(stage1.samples.data, expected.readFloat32('example/stage1/samples'), t1.atol, t1.rtol);
    const [stage2] = (await run(registry, 'KSamplerAdvanced', {
      ...common,
      model: refiner[0],
      positive: await enc(refiner[1], p.texts.positive),
      negative: await enc(refiner[1], p.texts.negative),
      latent_image: stage1,
      ...r.refiner,
    })) as [LatentValue];
    const t2 = tol('example/stage2/samples');
    expectClose(stage2.samples.data, expected.readFloat32('example/stage2/samples'), t2.atol, t2.rtol);
    const [image] = (await run(registry, 'VAEDecode', { samples: stage2, vae: refiner[2] })) as [{ data: Float32Array }];
    const ti = tol('example/image');
    expectClose(image.data, expected.readFloat32('example/image'), ti.atol, ti.rtol);
  });
});

describe('SDXL ControlNet through the nodes (ComfyUI numbers from conformance-sdxl-next)', () => {
  it('ControlNetLoader (diffusers layout) + ControlNetApplyAdvanced + KSampler on SDXL match the recorded run', async () => {
    const registry = createCoreRegistry(createRuntimeEnv({ dataDir: dataDir() }));
    const dir = join(NEXT, 'controlnet-sdxl-samplers');
    const cj = readJson(join(dir, 'case.json'));
    const p = cj.params;
    const inputs = SafetensorsFile.open(join(dir, 'inputs.safetensors'));
    const expected = SafetensorsFile.open(join(dir, 'expected.safetensors'));
    const [model] = (await run(registry, 'CheckpointLoaderSimple', { ckpt_name: BASE })) as [ModelValue];
    const [cn] = await run(registry, 'ControlNetLoader', { control_net_name: CONTROLNET });
    const cond = (ctx: string, pooled: string): ConditioningValue => {
      const c = inputs.info(ctx).shape;
      return { context: inputs.readFloat32(ctx), contextShape: [c[0]!, c[1]!, c[2]!], pooled: inputs.readFloat32(pooled), pooledShape: [1, inputs.info(pooled).shape[1]!] };
    };
    const positive: ConditioningValue = { ...cond('cond', 'pooled_cond'), sizes: { width: 1024, height: 1024, cropW: 0, cropH: 0, targetWidth: 1024, targetHeight: 1024 } };
    const negative = cond('uncond', 'pooled_uncond');
    const s = inputs.info('image1').shape;
    const image = { data: inputs.readFloat32('image1'), shape: [s[0]!, s[1]!, s[2]!, s[3]!] };
    const [pos, neg] = (await run(registry, 'ControlNetApplyAdvanced', { positive, negative, control_net: cn, image, ...p.advanced })) as [ConditioningValue, ConditioningValue];
    const n = inputs.info('noise').shape;
    const [latent] = (await run(registry, 'EmptyLatentImage', { width: n[3]! * 8, height: n[2]! * 8, batch_size: 1 })) as [LatentValue];
    const [out] = (await run(registry, 'KSampler', { model, seed: p.seed, steps: p.steps, cfg: p.cfg, sampler_name: p.sampler, scheduler: p.scheduler, positive: pos, negative: neg, latent_image: latent, denoise: 1 })) as [LatentValue];
    const t = cj.outputs.tensors['advanced/samples']?.tolerance ?? cj.tolerance.default;
    expectClose(out.samples.data, expected.readFloat32('advanced/samples'), t.atol, t.rtol);
  });
});
