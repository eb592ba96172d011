import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Executor } from '../../runtime/executor/executor.js';
import { validatePrompt } from '../../runtime/executor/validate.js';
import { DEMO_ARCH, DEMO_CHECKPOINT, DEMO_TOKENIZER } from '../../runtime/models/synthetic/demo.js';
import { DEMO_SDXL_CHECKPOINT } from '../../runtime/models/synthetic/demo-sdxl.js';
import { writeSyntheticCheckpoint } from '../../runtime/models/synthetic/generate.js';
import { sd1CheckpointKeyShapes } from '../../runtime/models/synthetic/tables.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import type { LatentValue } from '../../nodes/core/types.js';
import { demoRuntime, type TestRuntime, execNode } from './helpers.js';

type Node = ApiPrompt[string];
const n = (class_type: string, inputs: Record<string, unknown>): Node => ({ class_type, inputs }) as Node;
const OTHER = 'other-sd15.safetensors';
const f32 = Math.fround;
const SDXL_RATIOS = Object.fromEntries(
  ['time_embed.', 'label_emb.', ...[0, 1, 2, 3, 4, 5, 6, 7, 8].flatMap((i) => [`input_blocks.${i}.`, `output_blocks.${i}.`]), 'middle_block.0.', 'middle_block.1.', 'middle_block.2.', 'out.'].map((k) => [k, 1]),
);

/**
 * The merge nodes and CheckpointSave on the demo checkpoint and a second checkpoint of the same architecture
 * (other weights): saved tensors follow ComfyUI's merge arithmetic, the saved file renders like the merged
 * MODEL it came from, and the input models keep rendering as before.
 */
describe('merge nodes and CheckpointSave through the executor', () => {
  let rt: TestRuntime;
  const exec = (name: string, inputs: Record<string, unknown>) => execNode(rt.registry, name, inputs);

  beforeAll(async () => {
    rt = await demoRuntime('resflow-merge-');
    writeSyntheticCheckpoint(join(rt.env.folders.modelsDir, 'checkpoints', OTHER), sd1CheckpointKeyShapes(DEMO_ARCH), {
      seed: 4242,
      metadata: { 'resflow.unet.num_heads': '2', 'resflow.tokenizer': DEMO_TOKENIZER },
    });
  });

  const render = async (model: unknown, clip: unknown) => {
    const [pos] = await exec('CLIPTextEncode', { text: 'a red house by a lake', clip });
    const [neg] = await exec('CLIPTextEncode', { text: 'blurry', clip });
    const [latent] = await exec('EmptyLatentImage', { width: 64, height: 64, batch_size: 1 });
    const [l] = await exec('KSampler', { model, seed: 3, steps: 2, cfg: 5, sampler_name: 'euler', scheduler: 'normal', positive: pos, negative: neg, latent_image: latent, denoise: 1 });
    return Array.from((l as LatentValue).samples.data);
  };

  it('an API prompt with every merge node saves a checkpoint holding the merged weights', async () => {
    const prompt: ApiPrompt = {
      '1': n('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT }),
      '2': n('CheckpointLoaderSimple', { ckpt_name: OTHER }),
      '3': n('ModelMergeSimple', { model1: ['1', 0], model2: ['2', 0], ratio: 0.3 }),
      '4': n('ModelMergeBlocks', { model1: ['3', 0], model2: ['2', 0], input: 0.2, middle: 0.5, out: 0.9 }),
      '5': n('ModelMergeSubtract', { model1: ['1', 0], model2: ['2', 0], multiplier: 0.5 }),
      '6': n('ModelMergeAdd', { model1: ['4', 0], model2: ['5', 0] }),
      '7': n('ModelMergeSDXL', { model1: ['6', 0], model2: ['1', 0], ...SDXL_RATIOS, 'time_embed.': 0.5 }),
      '8': n('CLIPMergeSimple', { clip1: ['1', 1], clip2: ['2', 1], ratio: 0.3 }),
      '9': n('CLIPMergeSubtract', { clip1: ['8', 0], clip2: ['2', 1], multiplier: 2 }),
      '10': n('CLIPMergeAdd', { clip1: ['9', 0], clip2: ['2', 1] }),
      '11': n('CheckpointSave', { model: ['3', 0], clip: ['8', 0], vae: ['1', 2], filename_prefix: 'checkpoints/merged' }),
      '12': n('CheckpointSave', { model: ['7', 0], clip: ['10', 0], vae: ['2', 2], filename_prefix: 'checkpoints/chain' }),
    };
    const v = await validatePrompt(prompt, rt.registry);
    if (!v.ok) throw new Error(JSON.stringify(v.node_errors));
    expect(v.node_errors ?? {}).toEqual({});
    const r = await new Executor().run(v.graph);
    expect(r.status, r.error?.exception_message).toBe('success');
    expect(r.executed).toEqual(expect.arrayContaining(['3', '4', '5', '6', '7', '8', '9', '10', '11', '12']));

    const a = SafetensorsFile.open(join(rt.env.folders.modelsDir, 'checkpoints', DEMO_CHECKPOINT));
    const b = SafetensorsFile.open(join(rt.env.folders.modelsDir, 'checkpoints', OTHER));
    const saved = SafetensorsFile.open(join(rt.env.outputDir, 'checkpoints', 'merged_00001_.safetensors'));
    expect(JSON.parse(saved.metadata.prompt!)['11'].class_type).toBe('CheckpointSave');
    const unetKey = 'model.diffusion_model.input_blocks.1.0.in_layers.2.weight';
    const clipKey = 'cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight';
    for (const key of [unetKey, clipKey]) {
      const [wa, wb, ws] = [a.readFloat32(key), b.readFloat32(key), saved.readFloat32(key)];
      const want = Float32Array.from(wa, (x, i) => f32(f32(x * f32(0.3)) + f32(f32(0.7) * wb[i]!)));
      expect(Array.from(ws), key).toEqual(Array.from(want));
    }
    const vaeKey = 'first_stage_model.decoder.conv_out.weight';
    expect(Array.from(saved.readFloat32(vaeKey))).toEqual(Array.from(a.readFloat32(vaeKey)));
    // The chain: keys of every UNet / CLIP / VAE part, and the SDXL-block merge's time_embed share applied last.
    const chain = SafetensorsFile.open(join(rt.env.outputDir, 'checkpoints', 'chain_00001_.safetensors'));
    expect(chain.keys().length).toBe(saved.keys().length);
    expect(Array.from(chain.readFloat32(vaeKey))).toEqual(Array.from(b.readFloat32(vaeKey)));
  }, 240_000);

  it('the saved checkpoint renders exactly like the merged MODEL, and the inputs still render as before', async () => {
    const [ma, ca] = await exec('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT });
    const [mb, cb] = await exec('CheckpointLoaderSimple', { ckpt_name: OTHER });
    const plainA = await render(ma, ca);
    const [merged] = await exec('ModelMergeSimple', { model1: ma, model2: mb, ratio: 0.3 });
    const [mergedClip] = await exec('CLIPMergeSimple', { clip1: ca, clip2: cb, ratio: 0.3 });
    const fromMerge = await render(merged, mergedClip);
    expect(fromMerge).not.toEqual(plainA);
    expect(await render(ma, ca)).toEqual(plainA);

    const [, vae] = [undefined, (await exec('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT }))[2]];
    await exec('CheckpointSave', { model: merged, clip: mergedClip, vae, filename_prefix: 'checkpoints/roundtrip' });
    copyFileSync(join(rt.env.outputDir, 'checkpoints', 'roundtrip_00001_.safetensors'), join(rt.env.folders.modelsDir, 'checkpoints', 'roundtrip.safetensors'));
    const [ms, cs] = await exec('CheckpointLoaderSimple', { ckpt_name: 'roundtrip.safetensors' });
    expect(await render(ms, cs)).toEqual(fromMerge);
  }, 240_000);

  it('SDXL: both text towers merge, and CheckpointSave writes the SDXL layout that loads back as SDXL', async () => {
    const [m, c, vae] = await exec('CheckpointLoaderSimple', { ckpt_name: DEMO_SDXL_CHECKPOINT });
    const [half] = await exec('ModelMergeSDXL', { model1: m, model2: m, ...SDXL_RATIOS, 'out.': 0.5 });
    const [zero] = await exec('CLIPMergeSubtract', { clip1: c, clip2: c, multiplier: 1 });
    await exec('CheckpointSave', { model: half, clip: zero, vae, filename_prefix: 'checkpoints/sdxl' });
    const path = join(rt.env.outputDir, 'checkpoints', 'sdxl_00001_.safetensors');
    const saved = SafetensorsFile.open(path);
    const src = SafetensorsFile.open(join(rt.env.folders.modelsDir, 'checkpoints', DEMO_SDXL_CHECKPOINT));
    for (const key of ['conditioner.embedders.0.transformer.text_model.encoder.layers.0.mlp.fc1.weight', 'conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight']) {
      expect(saved.has(key), key).toBe(true);
      expect(saved.readFloat32(key).every((v) => v === 0), key).toBe(true);
    }
    // W*0.5 + W*0.5 is W again in float32.
    const k = 'model.diffusion_model.out.2.weight';
    expect(Array.from(saved.readFloat32(k))).toEqual(Array.from(src.readFloat32(k)));
    copyFileSync(path, join(rt.env.folders.modelsDir, 'checkpoints', 'sdxl-saved.safetensors'));
    const [back] = await exec('CheckpointLoaderSimple', { ckpt_name: 'sdxl-saved.safetensors' });
    expect((back as { family: string }).family).toBe('sdxl');
  }, 240_000);

  it('merging models of different families is refused with a clear message', async () => {
    const [ma] = await exec('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT });
    const fake = { ...(ma as object), family: 'sdxl' };
    await expect(exec('ModelMergeSimple', { model1: ma, model2: fake, ratio: 0.5 })).rejects.toThrow(/cannot merge a SD1 model with a SDXL one/);
  });
});
