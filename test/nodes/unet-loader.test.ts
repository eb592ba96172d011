import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConformanceCase } from '../../runtime/conformance/case.js';
import { cInScale } from '../../runtime/conformance/kinds/unet.js';
import { createCoreRegistry } from '../../nodes/core/index.js';
import { createRuntimeEnv } from '../../nodes/env.js';
import type { NodeContext } from '../../nodes/spec.js';
import type { ModelValue } from '../../nodes/core/types.js';
import type { NodeRegistry } from '../../nodes/registry.js';
import { SDXL_HEAD_CHANNELS_METADATA } from '../../runtime/models/sdxl/checkpoint.js';
import { ModelSampling } from '../../runtime/sampling/model-sampling.js';
import { SafetensorsFile } from '../../runtime/safetensors/reader.js';
import { writeSafetensors, type TensorToWrite } from '../../runtime/safetensors/writer.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import { DEMO_CHECKPOINT } from '../../runtime/models/synthetic/demo.js';
import { shared } from '../shared-data.js';
import { demoRuntime, runValid } from './helpers.js';

const PREFIX = 'model.diffusion_model.';

/** The UNet tensors of a checkpoint, bytes unchanged, with the prefix dropped or kept. */
function unetPart(src: string, keepPrefix: boolean): Record<string, TensorToWrite> {
  const f = SafetensorsFile.open(src);
  const out: Record<string, TensorToWrite> = {};
  for (const k of f.keys().filter((k) => k.startsWith(PREFIX))) {
    const info = f.info(k);
    out[keepPrefix ? k : k.slice(PREFIX.length)] = { dtype: info.dtype, shape: [...info.shape], data: f.readBytes(k) };
  }
  return out;
}

describe('UNETLoader (Load Diffusion Model)', () => {
  let registry: NodeRegistry;
  const logs: string[] = [];
  const ctx: NodeContext = { nodeId: 't', promptId: 't', signal: new AbortController().signal, progress() {}, log: (...a) => logs.push(a.join(' ')) };
  const load = async (unet_name: string, weight_dtype = 'default') => ((await registry.require('UNETLoader').spec.execute({ unet_name, weight_dtype }, ctx)) as [ModelValue])[0];

  beforeAll(() => {
    const dataDir = mkdtempSync(join(tmpdir(), 'resflow-unetloader-'));
    const env = createRuntimeEnv({ dataDir });
    mkdirSync(join(env.folders.modelsDir, 'unet'), { recursive: true });
    mkdirSync(join(env.folders.modelsDir, 'diffusion_models'), { recursive: true });
    // Bare keys (as diffusion-model-only files ship); the tiny model's 2 heads cannot be read from shapes.
    writeSafetensors(join(env.folders.modelsDir, 'unet', 'tiny-sd15-unet.safetensors'), unetPart(shared('conformance', 'models', 'tiny-sd15-a.safetensors'), false), { 'resflow.unet.num_heads': '2' });
    writeSafetensors(join(env.folders.modelsDir, 'diffusion_models', 'tiny-sdxl-unet.safetensors'), unetPart(shared('conformance-sdxl', 'models', 'tiny-sdxl-a.safetensors'), true), { [SDXL_HEAD_CHANNELS_METADATA]: '16' });
    writeSafetensors(join(env.folders.modelsDir, 'diffusion_models', 'tiny-refiner-unet.safetensors'), unetPart(shared('conformance-sdxl-next', 'models', 'tiny-sdxl-refiner-a.safetensors'), false), { [SDXL_HEAD_CHANNELS_METADATA]: '16' });
    registry = createCoreRegistry(env);
  });

  it('lists models/unet and models/diffusion_models together', async () => {
    const spec = registry.require('UNETLoader').spec;
    const options = spec.inputs!.required!.unet_name as unknown as { options: () => string[] };
    expect(options.options()).toEqual(['tiny-refiner-unet.safetensors', 'tiny-sd15-unet.safetensors', 'tiny-sdxl-unet.safetensors']);
  });

  it("a bare-key SD1.5 UNet gives ComfyUI's eps for the conformance UNet case", async () => {
    const model = await load('tiny-sd15-unet.safetensors');
    expect(model.family).toBe('sd1');
    const c = new ConformanceCase(shared('conformance', 'unet'));
    const x = c.input('x');
    const sigma = c.input('sigma').data as Float32Array;
    const ms = new ModelSampling();
    const ts = Float32Array.from(sigma, (s) => ms.sigmaToTimestep(s));
    const eps = await model.unet.base.eps({ data: cInScale(x, sigma), dims: x.dims }, ts, c.input('context'));
    const r = c.check('wrapper/eps', eps.data as Float32Array);
    expect(r.pass, `max err ${r.maxError} > ${r.limit}`).toBe(true);
  });

  it('tells SDXL base from the refiner by the UNet shapes, with prefixed or bare keys', async () => {
    const xl = await load('tiny-sdxl-unet.safetensors');
    expect(xl.family).toBe('sdxl');
    expect(xl.unet.base.config.admInChannels).toBe(32 + 6 * 256);
    const refiner = await load('tiny-refiner-unet.safetensors', 'fp8_e4m3fn');
    expect(refiner.family).toBe('sdxl-refiner');
    expect(refiner.unet.base.config.admInChannels).toBe(32 + 5 * 256);
    expect(logs.some((l) => l.includes('fp8_e4m3fn'))).toBe(true);
  });

  it('a missing or non-UNet file is an error naming it', async () => {
    await expect(load('nope.safetensors')).rejects.toThrow(/nope\.safetensors/);
  });

  it('samples in a validated workflow: UNETLoader for the model, the checkpoint for CLIP and VAE', async () => {
    const rt = await demoRuntime('resflow-unetloader-wf-');
    const ckpt = SafetensorsFile.open(join(rt.env.folders.modelsDir, 'checkpoints', DEMO_CHECKPOINT));
    mkdirSync(join(rt.env.folders.modelsDir, 'unet'), { recursive: true });
    writeSafetensors(join(rt.env.folders.modelsDir, 'unet', 'demo-unet.safetensors'), unetPart(ckpt.path, false), ckpt.metadata);
    const node = (class_type: string, inputs: Record<string, unknown>) => ({ class_type, inputs }) as ApiPrompt[string];
    const prompt: ApiPrompt = {
      '1': node('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT }),
      '2': node('UNETLoader', { unet_name: 'demo-unet.safetensors', weight_dtype: 'default' }),
      '3': node('CLIPTextEncode', { text: 'a cat', clip: ['1', 1] }),
      '4': node('CLIPTextEncode', { text: '', clip: ['1', 1] }),
      '5': node('EmptyLatentImage', { width: 64, height: 64, batch_size: 1 }),
      '6': node('KSampler', { model: ['2', 0], seed: 1, steps: 1, cfg: 4, sampler_name: 'euler', scheduler: 'normal', positive: ['3', 0], negative: ['4', 0], latent_image: ['5', 0], denoise: 1 }),
      '7': node('VAEDecode', { samples: ['6', 0], vae: ['1', 2] }),
      '8': node('SaveImage', { images: ['7', 0], filename_prefix: 'unetloader/test' }),
    };
    await runValid(prompt, rt.registry);
  });
});
