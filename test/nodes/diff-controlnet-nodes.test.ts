import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEMO_CHECKPOINT, DEMO_CONTROLNET, DEMO_INPUT_IMAGE } from '../../runtime/models/synthetic/demo.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import { writeSafetensors, type TensorToWrite } from '../../runtime/safetensors/writer.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import type { LatentValue } from '../../nodes/core/types.js';
import { demoRuntime, type TestRuntime, runValid, execNode } from './helpers.js';

type Node = ApiPrompt[string];
const n = (class_type: string, inputs: Record<string, unknown>): Node => ({ class_type, inputs }) as Node;
const DIFF = 'demo-controlnet-diff.safetensors';

/**
 * DiffControlNetLoader on a diff ControlNet made from the demo ControlNet (its UNet-copy weights minus the demo
 * checkpoint's, plus the `difference` marker): adding the model back must give the demo ControlNet's effect.
 */
describe('DiffControlNetLoader through the executor', () => {
  let rt: TestRuntime;
  const exec = (name: string, inputs: Record<string, unknown>) => execNode(rt.registry, name, inputs);

  beforeAll(async () => {
    rt = await demoRuntime('resflow-diffcn-');
    const dir = join(rt.env.folders.modelsDir, 'controlnet');
    const cn = SafetensorsFile.open(join(dir, DEMO_CONTROLNET));
    const ck = SafetensorsFile.open(join(rt.env.folders.modelsDir, 'checkpoints', DEMO_CHECKPOINT));
    const out: Record<string, TensorToWrite> = { difference: { dtype: 'F32', shape: [], data: [0] } };
    let diffs = 0;
    for (const key of cn.keys()) {
      const shape = cn.info(key).shape;
      const data = cn.readFloat32(key);
      const uk = `model.diffusion_model.${key.slice('control_model.'.length)}`;
      if (key.startsWith('control_model.') && ck.has(uk) && ck.info(uk).shape.join() === shape.join()) {
        const u = ck.readFloat32(uk);
        out[key] = { dtype: 'F32', shape, data: Float32Array.from(data, (v, i) => v - u[i]!) };
        diffs++;
      } else out[key] = { dtype: 'F32', shape, data };
    }
    expect(diffs).toBeGreaterThan(20);
    writeSafetensors(join(dir, DIFF), out, { ...cn.metadata });
  });

  it('an API prompt with DiffControlNetLoader runs, and the diff file controls like the full ControlNet', async () => {
    const prompt: ApiPrompt = {
      '1': n('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT }),
      '2': n('CLIPTextEncode', { text: 'a red house', clip: ['1', 1] }),
      '3': n('CLIPTextEncode', { text: 'blurry', clip: ['1', 1] }),
      '4': n('EmptyLatentImage', { width: 64, height: 64, batch_size: 1 }),
      '5': n('LoadImage', { image: DEMO_INPUT_IMAGE }),
      '6': n('DiffControlNetLoader', { model: ['1', 0], control_net_name: DIFF }),
      '7': n('ControlNetApplyAdvanced', { positive: ['2', 0], negative: ['3', 0], control_net: ['6', 0], image: ['5', 0], strength: 1, start_percent: 0, end_percent: 1 }),
      '8': n('KSampler', { model: ['1', 0], seed: 9, steps: 2, cfg: 5, sampler_name: 'euler', scheduler: 'normal', positive: ['7', 0], negative: ['7', 1], latent_image: ['4', 0], denoise: 1 }),
      '9': n('VAEDecode', { samples: ['8', 0], vae: ['1', 2] }),
      '10': n('SaveImage', { images: ['9', 0], filename_prefix: 'diffcn/out' }),
    };
    await runValid(prompt, rt.registry);

    const [model, clip] = await exec('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT });
    const [pos] = await exec('CLIPTextEncode', { text: 'a red house', clip });
    const [neg] = await exec('CLIPTextEncode', { text: 'blurry', clip });
    const [latent] = await exec('EmptyLatentImage', { width: 64, height: 64, batch_size: 1 });
    const [image] = await exec('LoadImage', { image: DEMO_INPUT_IMAGE });
    const render = async (cn: unknown) => {
      const [p, ng] = cn ? await exec('ControlNetApplyAdvanced', { positive: pos, negative: neg, control_net: cn, image, strength: 1, start_percent: 0, end_percent: 1 }) : [pos, neg];
      const [l] = await exec('KSampler', { model, seed: 9, steps: 2, cfg: 5, sampler_name: 'euler', scheduler: 'normal', positive: p, negative: ng, latent_image: latent, denoise: 1 });
      return (l as LatentValue).samples.data;
    };
    const plain = await render(null);
    const [full] = await exec('ControlNetLoader', { control_net_name: DEMO_CONTROLNET });
    const [diff] = await exec('DiffControlNetLoader', { model, control_net_name: DIFF });
    const a = await render(full);
    const b = await render(diff);
    const maxAbs = (x: Float32Array, y: Float32Array) => x.reduce((m, vv, i) => Math.max(m, Math.abs(vv - y[i]!)), 0);
    const scale = a.reduce((m, vv) => Math.max(m, Math.abs(vv)), 0);
    expect(maxAbs(a, plain) / scale).toBeGreaterThan(1e-3);
    // (C - U) + U differs from C by float32 rounding only.
    expect(maxAbs(a, b) / scale).toBeLessThan(1e-4);
  }, 240_000);
});
