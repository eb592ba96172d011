/**
 * SaveResAdapter's files: the released two-file format (names, dtypes, alpha) checked against the official
 * resadapter_v2_sd1.5 release, a round trip through the loader, and the adapter changing the UNet output
 * exactly as the training graph predicted it would.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SD15_UNET, unetKeyShapes } from '../../runtime/adapters/arch-tables.js';
import { applyResAdapter } from '../../runtime/pipeline/adapter-loaders.js';
import { PatchedUnet } from '../../runtime/pipeline/patched-model.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import { FixedBatchSource } from '../../runtime/training/batches.js';
import { readResAdapterParams, resAdapterKeyNames, writeResAdapter } from '../../runtime/training/export.js';
import { adapterLayout, type AdapterLayout } from '../../runtime/training/params.js';
import { ResAdapterTrainer } from '../../runtime/training/trainer.js';
import { demoModel, maxAbsDiff, randomMicro, settings, type DemoModel } from './helpers.js';
import { shared } from '../shared-data.js';

const OFFICIAL = shared('resadapter', 'resadapter_v2_sd1.5');

function dtypes(path: string): Map<string, string> {
  const f = SafetensorsFile.open(path);
  return new Map(f.keys().map((k) => [k, f.info(k).dtype]));
}

describe('SaveResAdapter format', () => {
  it('names and stores an SD1.5 adapter exactly like the official release', () => {
    const table = unetKeyShapes(SD15_UNET, '');
    const layout = adapterLayout({ names: () => [...table.keys()], shape: (k) => table.get(k)! }, 16, 8);
    const names = resAdapterKeyNames(SD15_UNET, layout);
    const lora = dtypes(join(OFFICIAL, 'pytorch_lora_weights.safetensors'));
    const norms = dtypes(join(OFFICIAL, 'diffusion_pytorch_model.safetensors'));
    const ourLora = [...names.lora.values()].flatMap((k) => [`${k}.alpha`, `${k}.lora_down.weight`, `${k}.lora_up.weight`]);
    expect(ourLora.sort()).toEqual([...lora.keys()].sort());
    expect([...names.norms.values()].sort()).toEqual([...norms.keys()].sort());
    expect(new Set(lora.values())).toEqual(new Set(['F16']));
    expect(new Set(norms.values())).toEqual(new Set(['F32']));
    // Shapes too: [16, in, 3, 3] down, [out, 16, 1, 1] up, as the layout has them.
    const f = SafetensorsFile.open(join(OFFICIAL, 'pytorch_lora_weights.safetensors'));
    for (const m of layout.lora) {
      const k = names.lora.get(m.module)!;
      expect(f.info(`${k}.lora_down.weight`).shape).toEqual(layout.params.find((p) => p.name === m.down)!.shape);
      expect(f.info(`${k}.lora_up.weight`).shape).toEqual(layout.params.find((p) => p.name === m.up)!.shape);
      expect(f.readFloat32(`${k}.alpha`)[0]).toBe(8);
    }
  });
});

describe('a trained adapter, saved and loaded back', () => {
  let dm: DemoModel;
  let layout: AdapterLayout;
  let trainer: ResAdapterTrainer;
  let dir: string;

  beforeAll(async () => {
    dm = await demoModel();
    layout = adapterLayout(dm.model.weights, 8, 4);
    trainer = await ResAdapterTrainer.create(dm.model, layout, settings());
    const src = new FixedBatchSource(randomMicro(4, 2, 8, 8));
    for (let k = 0; k < 5; k++) await trainer.trainStep(src);
    dir = join(dm.dir, 'models', 'resadapters', 'trained');
    writeResAdapter(dir, dm.model.weights, layout, trainer.state.params, { 'resflow.training': '{}' });
  });

  it('writes the two official files, which read back to the trained parameters', () => {
    expect(existsSync(join(dir, 'pytorch_lora_weights.safetensors'))).toBe(true);
    expect(existsSync(join(dir, 'diffusion_pytorch_model.safetensors'))).toBe(true);
    const back = readResAdapterParams(dir, dm.model.weights, layout, trainer.state.params);
    for (const p of layout.params) {
      const want = trainer.state.params.get(p.name)!;
      const got = back.get(p.name)!;
      if (p.group === 'norm') expect(got, p.name).toEqual(want);
      else {
        const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        expect(scale).toBeGreaterThan(0);
        // F16 keeps 11 significant bits.
        expect(maxAbsDiff(got, want) / scale, p.name).toBeLessThan(1e-3);
      }
    }
  });

  it('changes the UNet output through ApplyResAdapter exactly as the training graph predicts', async () => {
    const mb = randomMicro(8, 1, 8, 12);
    const x = { data: trainer.noisy(mb), dims: mb.dims };
    const ctx = { data: mb.context, dims: mb.contextDims };
    const base = (await dm.sd1.unet.eps(x, mb.timesteps, ctx)).data as Float32Array;
    const patched = applyResAdapter(PatchedUnet.of(dm.sd1.unet), dir, 1).model;
    const adapted = (await dm.sd1.unet.eps(x, mb.timesteps, ctx, { overrides: patched.overrides()! })).data as Float32Array;
    const rmsBase = Math.sqrt(base.reduce((s, v) => s + v * v, 0) / base.length);
    const change = Math.sqrt(base.reduce((s, v, i) => s + (v - adapted[i]!) ** 2, 0) / base.length);
    expect(change).toBeGreaterThan(1e-3 * rmsBase);
    // With the saved (F16-rounded) parameters, the training graph's prediction is the adapted output.
    const saved = readResAdapterParams(dir, dm.model.weights, layout, trainer.state.params);
    for (const [k, v] of saved) trainer.state.params.set(k, v);
    const mismatch = await trainer.evaluate({ ...mb, target: adapted });
    expect(Math.sqrt(mismatch)).toBeLessThan(1e-4 * change);
  });
});
