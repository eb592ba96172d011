import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelFamily, MODEL_FAMILIES, registerModelFamily, type ModelFamily, type ModelFamilyId } from '../../runtime/models/families/registry.js';
import { DEMO_CHECKPOINT, DEMO_LCM_LORA } from '../../runtime/models/synthetic/demo.js';
import type { Vae } from '../../runtime/models/vae/index.js';
import { familyNodes, registerFamilyNodes, type LoadedFamilyId } from '../../nodes/core/families.js';
import type { ClipValue, ConditioningValue, LatentValue, ModelValue } from '../../nodes/core/types.js';
import { demoRuntime, type TestRuntime, execNode } from './helpers.js';

/**
 * Adding a model family = its descriptor + its node binding, registered; no node knows its name. A throwaway
 * family described like SD1.x (same encoders, latent format, sampler model) under its own id must run the
 * common nodes (LoraLoader, CLIPSetLastLayer, CLIPTextEncode, KSampler, VAEDecode) and give
 * exactly the SD1.x numbers, while nodes that need another family's conditioning refuse it by name.
 */
const ID: ModelFamilyId = 'throwaway-test';

describe('a model family added by registration alone', () => {
  let rt: TestRuntime;
  const exec = (name: string, inputs: Record<string, unknown>) => execNode(rt.registry, name, inputs);
  const removals: Array<() => void> = [];
  let family: ModelFamily;

  beforeAll(async () => {
    rt = await demoRuntime('resflow-family-');
    const sd1 = modelFamily('sd1');
    // Never detected from a file: the test loads through the binding, the way CheckpointLoaderSimple would.
    family = { ...sd1, id: ID, name: 'Throwaway test family', label: 'Throwaway', matches: () => false };
    const sd1Nodes = familyNodes('sd1');
    const asFamily = <T extends { family: LoadedFamilyId }>(v: T): T => ({ ...v, family: ID as LoadedFamilyId });
    removals.push(registerModelFamily(family));
    removals.push(
      registerFamilyNodes({
        family,
        async load(path, folders) {
          const [m, c, v] = await sd1Nodes.load(path, folders);
          return [asFamily(m), { ...asFamily(c), encoders: c.encoders.map((e, i) => ({ ...e, spec: family.textEncoders[i]! })) }, v];
        },
        encodeText: (c, text) => sd1Nodes.encodeText(c, text),
        samplerModel: (m, p, n, shape, seed) => sd1Nodes.samplerModel(m, p, n, shape, seed),
      }),
    );
  });

  afterAll(() => {
    for (const remove of removals.reverse()) remove();
  });

  /** LoraLoader → CLIPSetLastLayer → CLIPTextEncode (positive, negative) → KSampler → VAEDecode through the registry's nodes. */
  async function render(base: ModelValue, baseClip: ClipValue, vae: Vae) {
    const [model, clip] = (await exec('LoraLoader', { model: base, clip: baseClip, lora_name: DEMO_LCM_LORA, strength_model: 0.8, strength_clip: 0.8 })) as [ModelValue, ClipValue];
    expect(model.unet.isPatched).toBe(true);
    expect(model.family).toBe(base.family);
    const [skipped] = (await exec('CLIPSetLastLayer', { clip, stop_at_clip_layer: -2 })) as [ClipValue];
    const [positive] = (await exec('CLIPTextEncode', { clip: skipped, text: 'a (red:1.2) house by the sea' })) as [ConditioningValue];
    const [negative] = (await exec('CLIPTextEncode', { clip: skipped, text: 'blurry' })) as [ConditioningValue];
    const [latent] = (await exec('EmptyLatentImage', { width: 64, height: 64, batch_size: 1 })) as [LatentValue];
    const [sampled] = (await exec('KSampler', {
      model,
      positive,
      negative,
      latent_image: latent,
      seed: 7,
      steps: 2,
      cfg: 6,
      sampler_name: 'euler',
      scheduler: 'normal',
      denoise: 1,
    })) as [LatentValue];
    const [image] = (await exec('VAEDecode', { samples: sampled, vae })) as [{ data: Float32Array }];
    return { skipped, positive, sampled, image };
  }

  it('loads, encodes, samples and decodes exactly like the family it was described from', async () => {
    const path = rt.env.folders.resolve('checkpoints', DEMO_CHECKPOINT);
    const [model, clip, vae] = await familyNodes(ID as LoadedFamilyId).load(path, rt.env.folders);
    expect(model.family).toBe(ID);
    expect(clip.family).toBe(ID);
    expect(MODEL_FAMILIES[0]!.id).toBe(ID);
    const [sd1Model, sd1Clip, sd1Vae] = (await exec('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT })) as [ModelValue, ClipValue, Vae];
    expect(sd1Model.family).toBe('sd1');

    const ours = await render(model, clip, vae);
    const theirs = await render(sd1Model, sd1Clip, sd1Vae);
    expect(ours.skipped.family).toBe(ID);
    expect(ours.skipped.clipSkip).toBe(2);
    expect(ours.positive.contextShape).toEqual(theirs.positive.contextShape);
    expect(Array.from(ours.positive.context)).toEqual(Array.from(theirs.positive.context));
    expect(Array.from(ours.sampled.samples.data)).toEqual(Array.from(theirs.sampled.samples.data));
    expect(Array.from(ours.image.data)).toEqual(Array.from(theirs.image.data));
    // Something really happened: the sampled latent is not the empty one, the layer choice mattered.
    expect(ours.sampled.samples.data.some((x) => Math.abs(x) > 1e-3)).toBe(true);
    const [lastLayer] = (await exec('CLIPTextEncode', { clip, text: 'a (red:1.2) house by the sea' })) as [ConditioningValue];
    expect(Array.from(lastLayer.context)).not.toEqual(Array.from(ours.positive.context));
  });

  it("refuses nodes that need another family's conditioning with the standard error naming the node", async () => {
    const [, clip] = await familyNodes(ID as LoadedFamilyId).load(rt.env.folders.resolve('checkpoints', DEMO_CHECKPOINT), rt.env.folders);
    const sizes = { width: 1024, height: 1024, crop_w: 0, crop_h: 0, target_width: 1024, target_height: 1024, text_g: 'x', text_l: 'x' };
    await expect(exec('CLIPTextEncodeSDXL', { clip, ...sizes })).rejects.toThrow(/^CLIPTextEncodeSDXL needs the CLIP of an SDXL checkpoint .*this is the CLIP of a Throwaway checkpoint/);
    await expect(exec('CLIPTextEncodeSDXLRefiner', { clip, ascore: 6, width: 1024, height: 1024, text: 'x' })).rejects.toThrow(
      /^CLIPTextEncodeSDXLRefiner needs the CLIP of an SDXL refiner checkpoint .*this is the CLIP of a Throwaway checkpoint/,
    );
  });
});
