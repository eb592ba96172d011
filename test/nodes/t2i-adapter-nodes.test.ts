import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Executor } from '../../runtime/executor/executor.js';
import { validatePrompt } from '../../runtime/executor/validate.js';
import { DEMO_ARCH, DEMO_INPUT_IMAGE, DEMO_TOKENIZER, DEMO_UNET } from '../../runtime/models/synthetic/demo.js';
import { initTensor, writeSyntheticCheckpoint } from '../../runtime/models/synthetic/generate.js';
import { sd1CheckpointKeyShapes } from '../../runtime/models/synthetic/tables.js';
import { T2IAdapter } from '../../runtime/models/t2i/adapter.js';
import { writeSafetensors, type TensorToWrite } from '../../runtime/safetensors/writer.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import type { LatentValue } from '../../nodes/core/types.js';
import { demoRuntime, type TestRuntime, execNode } from './helpers.js';

type Node = ApiPrompt[string];
const n = (class_type: string, inputs: Record<string, unknown>): Node => ({ class_type, inputs }) as Node;
const CKPT = 'tiny-sd15-topology.safetensors';
const ADAPTER = 't2i-tiny.safetensors';
const CH = [32, 64, 128, 128];

/** A T2I-Adapter in the original layout for that UNet: sd15v2 style (ksize 1, skip without conv, avg-pool downs). */
function writeAdapter(path: string): void {
  const t: Record<string, TensorToWrite> = {};
  const put = (name: string, shape: number[], scale = 1) => (t[name] = { dtype: 'F32', shape, data: initTensor(name, shape, 77).map((v) => v * scale) });
  put('conv_in.weight', [CH[0]!, 3 * 64, 3, 3]);
  put('conv_in.bias', [CH[0]!]);
  for (let i = 0; i < 4; i++)
    for (let j = 0; j < 2; j++) {
      const b = `body.${i * 2 + j}`;
      const inC = j === 0 && i > 0 ? CH[i - 1]! : CH[i]!;
      if (inC !== CH[i]) {
        put(`${b}.in_conv.weight`, [CH[i]!, inC, 1, 1]);
        put(`${b}.in_conv.bias`, [CH[i]!]);
      }
      put(`${b}.block1.weight`, [CH[i]!, CH[i]!, 3, 3]);
      put(`${b}.block1.bias`, [CH[i]!]);
      put(`${b}.block2.weight`, [CH[i]!, CH[i]!, 1, 1]);
      put(`${b}.block2.bias`, [CH[i]!]);
    }
  writeSafetensors(path, t);
}

/** An Adapter_light file (per level: 1x1 in_conv to c/4, light resnets, 1x1 out_conv). */
function writeLightAdapter(path: string): void {
  const t: Record<string, TensorToWrite> = {};
  const put = (name: string, shape: number[]) => (t[name] = { dtype: 'F32', shape, data: initTensor(name, shape, 78) });
  CH.forEach((c, i) => {
    const inC = i === 0 ? 3 * 64 : CH[i - 1]!;
    put(`body.${i}.in_conv.weight`, [c / 4, inC, 1, 1]);
    put(`body.${i}.in_conv.bias`, [c / 4]);
    for (let r = 0; r < 2; r++)
      for (const b of ['block1', 'block2']) {
        put(`body.${i}.body.${r}.${b}.weight`, [c / 4, c / 4, 3, 3]);
        put(`body.${i}.body.${r}.${b}.bias`, [c / 4]);
      }
    put(`body.${i}.out_conv.weight`, [c, c / 4, 1, 1]);
    put(`body.${i}.out_conv.bias`, [c]);
  });
  writeSafetensors(path, t);
}

/** T2I-Adapter files through ControlNetLoader on a tiny UNet with SD1.5's block layout (4 levels, 2 resnets each). */
describe('T2I-Adapter through ControlNetLoader', () => {
  let rt: TestRuntime;
  const exec = (name: string, inputs: Record<string, unknown>) => execNode(rt.registry, name, inputs);

  beforeAll(async () => {
    rt = await demoRuntime('resflow-t2i-');
    const unet = { ...DEMO_UNET, channelMult: [1, 2, 4, 4], numResBlocks: [2, 2, 2, 2], transformerDepth: [0, 0, 1, 0], transformerDepthOutput: [0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0] };
    writeSyntheticCheckpoint(join(rt.env.folders.modelsDir, 'checkpoints', CKPT), sd1CheckpointKeyShapes({ ...DEMO_ARCH, unet }), {
      seed: 5,
      metadata: { 'resflow.unet.num_heads': '2', 'resflow.tokenizer': DEMO_TOKENIZER },
    });
    writeAdapter(join(rt.env.folders.modelsDir, 'controlnet', ADAPTER));
    writeLightAdapter(join(rt.env.folders.modelsDir, 'controlnet', 't2i-light.safetensors'));
  });

  it('the light layout loads too, with the same feature sizes', async () => {
    const [adapter] = await exec('ControlNetLoader', { control_net_name: 't2i-light.safetensors' });
    expect((adapter as T2IAdapter).arch.kind).toBe('light');
    const feats = await (adapter as T2IAdapter).features(new Float32Array(3 * 64 * 64).fill(0.5), [1, 3, 64, 64]);
    expect(feats.map((f) => f.dims)).toEqual([[1, 32, 8, 8], [1, 64, 4, 4], [1, 128, 2, 2], [1, 128, 1, 1]]);
  });

  it('loads as a T2I-Adapter with one feature per level, sized for input blocks 2, 5, 8 and 11', async () => {
    const [adapter] = await exec('ControlNetLoader', { control_net_name: ADAPTER });
    expect(adapter).toBeInstanceOf(T2IAdapter);
    const feats = await (adapter as T2IAdapter).features(new Float32Array(3 * 64 * 64).fill(0.5), [1, 3, 64, 64]);
    expect(feats.map((f) => f.dims)).toEqual([[1, 32, 8, 8], [1, 64, 4, 4], [1, 128, 2, 2], [1, 128, 1, 1]]);
    expect([0, 1, 2, 3].map(T2IAdapter.targetBlock)).toEqual([2, 5, 8, 11]);
  });

  it('an API prompt with the adapter runs, changes the render, and strength 0 leaves it exactly as without', async () => {
    const prompt = (strength: number): ApiPrompt => ({
      '1': n('CheckpointLoaderSimple', { ckpt_name: CKPT }),
      '2': n('CLIPTextEncode', { text: 'a red house', clip: ['1', 1] }),
      '3': n('CLIPTextEncode', { text: 'blurry', clip: ['1', 1] }),
      '4': n('EmptyLatentImage', { width: 64, height: 64, batch_size: 1 }),
      '5': n('LoadImage', { image: DEMO_INPUT_IMAGE }),
      '6': n('ControlNetLoader', { control_net_name: ADAPTER }),
      '7': n('ControlNetApplyAdvanced', { positive: ['2', 0], negative: ['3', 0], control_net: ['6', 0], image: ['5', 0], strength, start_percent: 0, end_percent: 1 }),
      '8': n('KSampler', { model: ['1', 0], seed: 9, steps: 2, cfg: 5, sampler_name: 'euler', scheduler: 'normal', positive: ['7', 0], negative: ['7', 1], latent_image: ['4', 0], denoise: 1 }),
      '9': n('VAEDecode', { samples: ['8', 0], vae: ['1', 2] }),
      '10': n('SaveImage', { images: ['9', 0], filename_prefix: `t2i/s${strength}` }),
    });
    const v = await validatePrompt(prompt(1), rt.registry);
    if (!v.ok) throw new Error(JSON.stringify(v.node_errors));
    const r = await new Executor().run(v.graph);
    expect(r.status, r.error?.exception_message).toBe('success');

    const [model, clip] = await exec('CheckpointLoaderSimple', { ckpt_name: CKPT });
    const [pos] = await exec('CLIPTextEncode', { text: 'a red house', clip });
    const [neg] = await exec('CLIPTextEncode', { text: 'blurry', clip });
    const [latent] = await exec('EmptyLatentImage', { width: 64, height: 64, batch_size: 1 });
    const [image] = await exec('LoadImage', { image: DEMO_INPUT_IMAGE });
    const [adapter] = await exec('ControlNetLoader', { control_net_name: ADAPTER });
    const render = async (strength: number | null) => {
      const [p, ng] = strength === null ? [pos, neg] : await exec('ControlNetApplyAdvanced', { positive: pos, negative: neg, control_net: adapter, image, strength, start_percent: 0, end_percent: 1 });
      const [l] = await exec('KSampler', { model, seed: 9, steps: 2, cfg: 5, sampler_name: 'euler', scheduler: 'normal', positive: p, negative: ng, latent_image: latent, denoise: 1 });
      return Array.from((l as LatentValue).samples.data);
    };
    const plain = await render(null);
    const full = await render(1);
    const scale = plain.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    expect(full.reduce((m, x, i) => Math.max(m, Math.abs(x - plain[i]!)), 0) / scale).toBeGreaterThan(1e-3);
    expect(await render(0)).toEqual(plain);
  }, 240_000);
});
