/**
 * ResAdapter training on SDXL through the nodes: the tiny SDXL conformance checkpoint, the generated demo
 * dataset, two optimiser steps, the official two-file adapter with the released SDXL key set and dtypes,
 * and the saved adapter loaded back onto the SDXL model by ResAdapterLoader.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCoreRegistry } from '../../nodes/core/index.js';
import { createRuntimeEnv, type RuntimeEnv } from '../../nodes/env.js';
import type { NodeRegistry } from '../../nodes/registry.js';
import { Executor } from '../../runtime/executor/executor.js';
import { validatePrompt } from '../../runtime/executor/validate.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import { STATE_FILE } from '../../runtime/training/state.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import { readJson, shared } from '../adapters/helpers.js';

const CKPT = 'tiny-sdxl-a.safetensors';
const FILES = ['pytorch_lora_weights.safetensors', 'diffusion_pytorch_model.safetensors'] as const;
type Node = ApiPrompt[string];
const n = (class_type: string, inputs: Record<string, unknown>): Node => ({ class_type, inputs }) as Node;

function header(path: string): Map<string, string> {
  const f = SafetensorsFile.open(path);
  return new Map(f.keys().map((k) => [k, f.info(k).dtype]));
}

describe('TrainResAdapter on SDXL', () => {
  let env: RuntimeEnv;
  let registry: NodeRegistry;

  beforeAll(() => {
    const dataDir = mkdtempSync(join(tmpdir(), 'resflow-sdxl-train-'));
    writeFileSync(join(dataDir, 'resflow.config.json'), JSON.stringify({ tokenizerDirs: [shared('clip-tokenizer')] }));
    const ckDir = join(dataDir, 'models', 'checkpoints');
    mkdirSync(ckDir, { recursive: true });
    copyFileSync(shared('conformance-sdxl', 'models', CKPT), join(ckDir, CKPT));
    // The tiny model's head counts are not in its keys: the sidecar a user would write.
    const m = readJson(shared('conformance-sdxl', 'pipeline-txt2img', 'case.json')).models.checkpoint;
    writeFileSync(join(ckDir, 'tiny-sdxl-a.resflow.json'), JSON.stringify({ unet_config: m.unet_config_comfy, clip_l_config: m.clip_l_config, clip_g_config: m.clip_g_config }));
    env = createRuntimeEnv({ dataDir });
    registry = createCoreRegistry(env);
  });

  async function run(prompt: ApiPrompt) {
    const v = await validatePrompt(prompt, registry);
    if (!v.ok) throw new Error(JSON.stringify(v.node_errors));
    return new Executor({ log: () => {} }).run(v.graph);
  }

  it('trains, saves the released SDXL two-file key set, and loads back with ResAdapterLoader', async () => {
    const train: ApiPrompt = {
      '1': n('CheckpointLoaderSimple', { ckpt_name: CKPT }),
      '2': n('ResAdapterDataset', {
        vae: ['1', 2],
        clip: ['1', 1],
        folder: 'resflow-demo-dataset',
        base_resolution: 64,
        resolutions: '96',
        aspect_ratios: '1:1, 3:4, 4:3',
        bucket_step: 32,
        on_problem: 'error',
      }),
      '3': n('TrainResAdapter', {
        model: ['1', 0], dataset: ['2', 0], steps: 2, batch_size: 1, micro_batch: 1, learning_rate: 0.01, beta1: 0.95, beta2: 0.99,
        weight_decay: 0.01, warmup_steps: 0, grad_clip: 0, seed: 3, rank: 16, alpha: 8, checkpoint_every: 0, run_name: 'sdxl-run', resume: false, recompute: false,
      }),
      '4': n('SaveResAdapter', { resadapter: ['3', 0], name: 'sdxl-trained' }),
    };
    const r = await run(train);
    expect(r.status, r.error?.exception_message).toBe('success');

    // Loss: finite at both steps, and the second step (new batch, updated adapter) differs from the first.
    const state = SafetensorsFile.open(join(env.outputDir, 'training', 'sdxl-run', STATE_FILE));
    const history = JSON.parse(state.metadata['resflow.training.state']!).history as Array<[number, number]>;
    expect(history.map(([s]) => s)).toEqual([1, 2]);
    for (const [, loss] of history) expect(Number.isFinite(loss) && loss > 0).toBe(true);
    expect(history[1]![1]).not.toBe(history[0]![1]);

    const dir = join(env.folders.folder('resadapters'), 'sdxl-trained');
    const want = readJson(shared('conformance-sdxl-next', 'resadapter-sdxl-train-shapes', 'case.json')).params.files as Record<string, Record<string, { dtype: string }>>;
    for (const file of FILES) {
      const ours = header(join(dir, file));
      const released = header(shared('resadapter', 'resadapter_v2_sdxl', file));
      // Exactly the SDXL ResAdapter table for this UNet (names and dtypes)...
      expect(new Map([...ours].sort()), file).toEqual(new Map(Object.entries(want[file]!).map(([k, v]): [string, string] => [k, v.dtype]).sort()));
      // ...whose names and dtypes are the released SDXL variant's: the LoRA key set is the same 12 keys (SDXL's two
      // resamplers each way); the tiny UNet has one resnet per level where SDXL has two, so its norms are a subset.
      for (const [k, dtype] of ours) expect(released.get(k), `${file} ${k}`).toBe(dtype);
      if (file === 'pytorch_lora_weights.safetensors') expect([...ours.keys()].sort()).toEqual([...released.keys()].sort());
    }
    const lora = SafetensorsFile.open(join(dir, FILES[0]));
    expect(lora.readFloat32('lora_unet_down_blocks_0_downsamplers_0_conv.alpha')[0]).toBe(8);
    expect(lora.info('lora_unet_down_blocks_0_downsamplers_0_conv.lora_down.weight').shape[0]).toBe(16);
    // Trained: the zero-initialised up factors moved.
    const ups = lora.keys().filter((k) => k.endsWith('.lora_up.weight'));
    expect(ups.some((k) => lora.readFloat32(k).some((v) => v !== 0))).toBe(true);

    const render = (model: [string, number], prefix: string): ApiPrompt => ({
      '1': n('CheckpointLoaderSimple', { ckpt_name: CKPT }),
      '2': n('ResAdapterLoader', { model: ['1', 0], clip: ['1', 1], resadapter_name: 'sdxl-trained', strength_model: 1, strength_clip: 1 }),
      '3': n('CLIPTextEncode', { text: 'a red circle', clip: ['1', 1] }),
      '4': n('CLIPTextEncode', { text: '', clip: ['1', 1] }),
      '5': n('EmptyLatentImage', { width: 64, height: 96, batch_size: 1 }),
      '6': n('KSampler', { model, seed: 5, steps: 2, cfg: 5, sampler_name: 'euler', scheduler: 'normal', positive: ['3', 0], negative: ['4', 0], latent_image: ['5', 0], denoise: 1 }),
      '7': n('VAEDecode', { samples: ['6', 0], vae: ['1', 2] }),
      '8': n('SaveImage', { images: ['7', 0], filename_prefix: prefix }),
    });
    const png = async (p: ApiPrompt) => {
      const out = await run(p);
      expect(out.status, out.error?.exception_message).toBe('success');
      const img = (out.outputs['8']!.images as Array<{ filename: string; subfolder: string }>)[0]!;
      return readFileSync(join(env.outputDir, img.subfolder, img.filename));
    };
    const adapted = await png(render(['2', 0], 'sdxl-train/adapted'));
    const base = await png(render(['1', 0], 'sdxl-train/base'));
    expect(adapted.subarray(1, 4).toString()).toBe('PNG');
    expect(adapted.equals(base)).toBe(false);
  });
});
