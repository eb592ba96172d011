import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Executor } from '../../runtime/executor/executor.js';
import { validatePrompt } from '../../runtime/executor/validate.js';
import { readTorchObject } from '../../runtime/torchfile/torch-checkpoint.js';
import { DEMO_CHECKPOINT } from '../../runtime/models/synthetic/demo.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import type { LatentValue } from '../../nodes/core/types.js';
import { shared } from '../adapters/helpers.js';
import { demoRuntime, type TestRuntime, execNode } from './helpers.js';
import { callingPickle, storedZip } from './torch-zip-helpers.js';

type Node = ApiPrompt[string];
const n = (class_type: string, inputs: Record<string, unknown>): Node => ({ class_type, inputs }) as Node;

describe('HypernetworkLoader through the executor', () => {
  let rt: TestRuntime;
  const exec = (name: string, inputs: Record<string, unknown>) => execNode(rt.registry, name, inputs);

  beforeAll(async () => {
    rt = await demoRuntime('resflow-hypernet-');
    const dir = join(rt.env.folders.modelsDir, 'hypernetworks');
    mkdirSync(dir, { recursive: true });
    // Its 64-wide modules match the demo model's 64-wide text context and level-1 attention.
    copyFileSync(shared('conformance-nodes/models/hypernetwork-a.pt'), join(dir, 'hypernetwork-a.pt'));
  });

  it('a prompt with the hypernetwork renders differently from the same prompt without it', async () => {
    expect(rt.env.folders.list('hypernetworks')).toEqual(['hypernetwork-a.pt']);
    const base: ApiPrompt = {
      '1': n('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT }),
      '2': n('CLIPTextEncode', { text: 'a red house', clip: ['1', 1] }),
      '3': n('CLIPTextEncode', { text: 'blurry', clip: ['1', 1] }),
      '4': n('EmptyLatentImage', { width: 64, height: 64, batch_size: 1 }),
      '5': n('HypernetworkLoader', { model: ['1', 0], hypernetwork_name: 'hypernetwork-a.pt', strength: 0.8 }),
      '6': n('KSampler', { model: ['5', 0], seed: 5, steps: 2, cfg: 5, sampler_name: 'euler', scheduler: 'normal', positive: ['2', 0], negative: ['3', 0], latent_image: ['4', 0], denoise: 1 }),
      '7': n('VAEDecode', { samples: ['6', 0], vae: ['1', 2] }),
      '8': n('SaveImage', { images: ['7', 0], filename_prefix: 'hn/with' }),
    };
    const v = await validatePrompt(base, rt.registry);
    if (!v.ok) throw new Error(JSON.stringify(v.node_errors));
    const r = await new Executor().run(v.graph);
    expect(r.status, r.error?.exception_message).toBe('success');

    const [model, clip] = await exec('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT });
    const [pos] = await exec('CLIPTextEncode', { text: 'a red house', clip });
    const [neg] = await exec('CLIPTextEncode', { text: 'blurry', clip });
    const [latent] = await exec('EmptyLatentImage', { width: 64, height: 64, batch_size: 1 });
    const ks = async (m: unknown) => Array.from(((await exec('KSampler', { model: m, seed: 5, steps: 2, cfg: 5, sampler_name: 'euler', scheduler: 'normal', positive: pos, negative: neg, latent_image: latent, denoise: 1 }))[0] as LatentValue).samples.data);
    const plain = await ks(model);
    const [patched] = await exec('HypernetworkLoader', { model, hypernetwork_name: 'hypernetwork-a.pt', strength: 0.8 });
    const withHn = await ks(patched);
    const scale = plain.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    expect(withHn.reduce((m, x, i) => Math.max(m, Math.abs(x - plain[i]!)), 0) / scale).toBeGreaterThan(1e-3);
    const [zero] = await exec('HypernetworkLoader', { model, hypernetwork_name: 'hypernetwork-a.pt', strength: 0 });
    expect(await ks(zero)).toEqual(plain);
    expect(await ks(model)).toEqual(plain);
  }, 240_000);

  it('refuses pickles that would run code, naming the global', () => {
    const dir = join(rt.env.folders.modelsDir, 'hypernetworks');
    for (const [mod, fn] of [['os', 'system'], ['builtins', 'eval'], ['builtins', 'exec'], ['posix', 'system']] as const) {
      const file = join(dir, `evil-${fn}.pt`);
      writeFileSync(file, storedZip({ 'archive/data.pkl': callingPickle(mod, fn, 'touch /tmp/pwned'), 'archive/version': Buffer.from('3\n') }));
      expect(() => readTorchObject(file)).toThrow(new RegExp(`refused to load: its pickle asks for "${mod}\\.${fn}"`));
    }
  });
});
