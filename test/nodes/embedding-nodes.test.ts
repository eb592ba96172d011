import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { CLIP_KEYS } from '../../runtime/models/clip/config.js';
import { DEMO_CHECKPOINT } from '../../runtime/models/synthetic/demo.js';
import { writeSafetensors } from '../../runtime/safetensors/writer.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import type { ClipValue, ConditioningValue } from '../../nodes/core/types.js';
import { demoRuntime, type TestRuntime, runValid, execNode } from './helpers.js';

type Node = ApiPrompt[string];
const n = (class_type: string, inputs: Record<string, unknown>): Node => ({ class_type, inputs }) as Node;

/**
 * An embedding whose vectors are exactly the token-embedding rows of some words must condition exactly like
 * those words: the vectors replace the token lookups one for one, and everything after is the same encoder.
 */
describe('CLIPTextEncode with embedding:name from models/embeddings', () => {
  let rt: TestRuntime;
  let clip: ClipValue;
  const exec = (name: string, inputs: Record<string, unknown>) => execNode(rt.registry, name, inputs);
  const encode = async (text: string) => Array.from(((await exec('CLIPTextEncode', { text, clip }))[0] as ConditioningValue).context);

  beforeAll(async () => {
    rt = await demoRuntime('resflow-embeddings-');
    [, clip] = (await exec('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT })) as [unknown, ClipValue];
    const table = clip.encoders[0]!.encoder.base.weights.read(CLIP_KEYS.tokenEmbedding);
    const D = clip.encoders[0]!.encoder.base.config.hiddenSize;
    const rows = (ids: number[]) => {
      const out = new Float32Array(ids.length * D);
      ids.forEach((id, i) => out.set(table.subarray(id * D, (id + 1) * D), i * D));
      return out;
    };
    const dir = join(rt.env.folders.modelsDir, 'embeddings');
    mkdirSync(join(dir, 'styles'), { recursive: true });
    const words = clip.tokenizer.encode('red house');
    expect(words.length).toBeGreaterThan(1); // a multi-vector embedding
    writeSafetensors(join(dir, 'redhouse.safetensors'), { emb_params: { dtype: 'F32', shape: [words.length, D], data: rows(words) } });
    // ComfyUI searches subfolders too.
    const blue = clip.tokenizer.encode('blue');
    writeSafetensors(join(dir, 'styles', 'blue.safetensors'), { clip_l: { dtype: 'F32', shape: [blue.length, D], data: rows(blue) } });
  });

  afterEach(() => vi.restoreAllMocks());

  it('conditions exactly like the words whose token rows the vectors are', async () => {
    expect(rt.env.folders.list('embeddings')).toEqual(['redhouse.safetensors', 'styles/blue.safetensors']);
    const words = await encode('a redhouse, a red house at night');
    expect(await encode('a embedding:redhouse, a red house at night')).not.toEqual(words);
    expect(await encode('a embedding:redhouse at night')).toEqual(await encode('a red house at night'));
    expect(await encode('(embedding:redhouse:1.3) at night')).toEqual(await encode('(red house:1.3) at night'));
    expect(await encode('embedding:redhouse.safetensors and embedding:blue sky')).toEqual(await encode('red house and blue sky'));
    // The conditioning differs from the prompt without the embedding, so the equalities above are not vacuous.
    expect(await encode('a embedding:redhouse at night')).not.toEqual(await encode('a at night'));
  });

  it('a missing embedding is a warning naming it, and the word is dropped', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    expect(await encode('a embedding:nosuchthing at night')).toEqual(await encode('a at night'));
    expect(warn.mock.calls.map((c) => String(c[0]))).toEqual(['warning, embedding:nosuchthing at night does not exist, ignoring']);
  });

  it('runs in a validated workflow through the executor', async () => {
    const prompt: ApiPrompt = {
      '1': n('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT }),
      '2': n('CLIPTextEncode', { text: 'embedding:redhouse at night', clip: ['1', 1] }),
      '3': n('CLIPTextEncode', { text: 'blurry', clip: ['1', 1] }),
      '4': n('EmptyLatentImage', { width: 64, height: 64, batch_size: 1 }),
      '5': n('KSampler', { model: ['1', 0], seed: 3, steps: 1, cfg: 5, sampler_name: 'euler', scheduler: 'normal', positive: ['2', 0], negative: ['3', 0], latent_image: ['4', 0], denoise: 1 }),
      '6': n('VAEDecode', { samples: ['5', 0], vae: ['1', 2] }),
      '7': n('SaveImage', { images: ['6', 0], filename_prefix: 'emb/test' }),
    };
    await runValid(prompt, rt.registry);
  });
});
