import { beforeAll, describe, expect, it } from 'vitest';
import { relativeRms } from '../../runtime/graph/quantize.js';
import { DEMO_CHECKPOINT, DEMO_LCM_LORA, DEMO_RESADAPTER } from '../../runtime/models/synthetic/demo.js';
import { loadLoraForModels } from '../../runtime/pipeline/adapter-loaders.js';
import type { Vae } from '../../runtime/models/vae/index.js';
import { defaultPrecision, setDefaultPrecision } from '../../runtime/graph/precision.js';
import { takePrecisionFlag, applyPrecisionSettings } from '../../runtime/cli/precision-flag.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LatentValue, ModelValue } from '../../nodes/core/types.js';
import { demoRuntime, type TestRuntime, execNode } from './helpers.js';


describe('weight_dtype on the checkpoint loader, --precision and the config default', () => {
  let rt: TestRuntime;
  const exec = (name: string, inputs: Record<string, unknown>) => execNode(rt.registry, name, inputs);
  beforeAll(async () => {
    rt = await demoRuntime('resflow-int8-');
  });

  const render = async (weight_dtype: string | undefined, resadapter: boolean) => {
    const [model0, clip] = await exec('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT, ...(weight_dtype ? { weight_dtype } : {}) });
    let model = model0;
    if (resadapter) {
      const [ra] = await exec('LoadResAdapter', { resadapter_name: DEMO_RESADAPTER });
      [model] = await exec('ApplyResAdapter', { model, resadapter: ra, alpha: 1, norm_strength: 1 });
    }
    const [pos] = await exec('CLIPTextEncode', { text: 'a red house by a lake', clip });
    const [neg] = await exec('CLIPTextEncode', { text: 'blurry', clip });
    const [latent] = await exec('EmptyLatentImage', { width: 96, height: 64, batch_size: 1 });
    const [l] = await exec('KSampler', { model, seed: 3, steps: 3, cfg: 5, sampler_name: 'euler', scheduler: 'normal', positive: pos, negative: neg, latent_image: latent, denoise: 1 });
    return { precision: (model0 as ModelValue).unet.base.precision, samples: Float32Array.from((l as LatentValue).samples.data) };
  };

  it('int8 renders close to fp32, with and without a ResAdapter applied on top (no rebuild)', async () => {
    const fp32 = await render(undefined, false);
    const int8 = await render('int8', false);
    expect(fp32.precision).toBeUndefined(); // ComfyUI workflows lack the widget: process default
    expect(int8.precision).toBe('int8');
    const e = relativeRms(int8.samples, fp32.samples);
    expect(e).toBeGreaterThan(1e-5);
    expect(e).toBeLessThan(0.02); // measured 0.0017 on the demo model after 3 Euler steps
    const fp32Ra = await render('fp32', true);
    const int8Ra = await render('int8', true);
    expect(relativeRms(int8Ra.samples, fp32Ra.samples)).toBeLessThan(0.02);
    // The adapter's targets are graph inputs of the int8 model (codes quantised when fed), so it applies
    // without a rebuild and the int8 render follows it: closer to fp32 with the adapter than to fp32 without.
    expect(relativeRms(int8Ra.samples, fp32Ra.samples)).toBeLessThan(relativeRms(int8Ra.samples, fp32.samples));
    await expect(exec('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT, weight_dtype: 'fp4' })).rejects.toThrow();
  });

  it('bakes a LoRA into the int8 weights (same numbers as feeding it live), keeps it live in fp32, and sets the VAE', async () => {
    const sample = async (model: unknown, clip: unknown) => {
      const [pos] = await exec('CLIPTextEncode', { text: 'a red house by a lake', clip });
      const [latent] = await exec('EmptyLatentImage', { width: 64, height: 64, batch_size: 1 });
      const [l] = await exec('KSampler', { model, seed: 5, steps: 2, cfg: 1, sampler_name: 'lcm', scheduler: 'sgm_uniform', positive: pos, negative: pos, latent_image: latent, denoise: 1 });
      return Float32Array.from((l as LatentValue).samples.data);
    };
    const [m8, clip, vae8] = await exec('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT, weight_dtype: 'int8' });
    const [baked] = await exec('LoraLoaderModelOnly', { model: m8, lora_name: DEMO_LCM_LORA, strength_model: 0.8 });
    const bakedUnet = (baked as ModelValue).unet;
    expect(bakedUnet.adapters).toHaveLength(0);
    expect(bakedUnet.base).not.toBe((m8 as ModelValue).unet.base);
    expect(bakedUnet.base.precision).toBe('int8');
    const live = loadLoraForModels((m8 as ModelValue).unet, undefined, join(rt.env.folders.modelsDir, 'loras', DEMO_LCM_LORA), 0.8, 0).model!;
    const a = await sample(baked, clip);
    const b = await sample({ ...(m8 as ModelValue), unet: live }, clip);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(relativeRms(a, await sample(m8, clip))).toBeGreaterThan(1e-3); // the LoRA did something
    const [m32] = await exec('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT, weight_dtype: 'fp32' });
    const [liveFp32] = await exec('LoraLoaderModelOnly', { model: m32, lora_name: DEMO_LCM_LORA, strength_model: 0.8 });
    expect((liveFp32 as ModelValue).unet.adapters).toHaveLength(1);
    // weight_dtype reaches the VAE too: its decode is int8's (close to fp32, not equal).
    const [, , vae32] = await exec('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT, weight_dtype: 'fp32' });
    const z = { data: a, shape: [1, 4, 8, 8] as [number, number, number, number] };
    const d8 = (await (vae8 as Vae).decodeRaw(z)).data;
    const d32 = (await (vae32 as Vae).decodeRaw(z)).data;
    expect(relativeRms(d8, d32)).toBeGreaterThan(1e-5);
    expect(relativeRms(d8, d32)).toBeLessThan(0.1);
  });

  it('takes --precision off any command line, and reads the config default', () => {
    expect(takePrecisionFlag(['run', 'w.json', '--precision', 'int8', '--steps', '3'])).toEqual({ argv: ['run', 'w.json', '--steps', '3'], precision: 'int8' });
    expect(takePrecisionFlag(['--precision=fp32'])).toEqual({ argv: [], precision: 'fp32' });
    expect(() => takePrecisionFlag(['--precision', 'fp16'])).toThrow(/--precision must be one of fp32, int8; got "fp16"/);
    const before = defaultPrecision();
    try {
      writeFileSync(join(rt.env.dataDir, 'resflow.config.json'), JSON.stringify({ precision: 'int8' }));
      applyPrecisionSettings(rt.env.dataDir, undefined);
      expect(defaultPrecision()).toBe('int8');
      applyPrecisionSettings(rt.env.dataDir, 'fp32');
      expect(defaultPrecision()).toBe('fp32');
      writeFileSync(join(rt.env.dataDir, 'resflow.config.json'), JSON.stringify({ precision: 'int4' }));
      expect(() => applyPrecisionSettings(rt.env.dataDir, undefined)).toThrow(/precision/);
    } finally {
      setDefaultPrecision(before);
    }
  });
});
