import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { compareTensor } from '../../runtime/conformance/case.js';
import { CLIP_L_TOKENIZER } from '../../runtime/pipeline/sd1-loader.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import { createRuntimeEnv } from '../../nodes/env.js';
import { createCoreRegistry } from '../../nodes/core/index.js';
import type { NodeRegistry } from '../../nodes/registry.js';
import type { NodeContext } from '../../nodes/spec.js';
import type { ClipValue, ConditioningValue } from '../../nodes/core/types.js';
import { readJson } from '../adapters/helpers.js';
import { shared } from '../shared-data.js';

const CASE = shared('conformance-sdxl-next', 'embeddings-sdxl');
const CKPT = 'tiny-sdxl-a.safetensors';

/** The tiny SDXL checkpoint (with its head/config sidecar), the tokenizer and the set's embeddings folder. */
function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'resflow-sdxl-emb-'));
  const models = join(dir, 'models');
  for (const sub of ['checkpoints', 'tokenizers']) mkdirSync(join(models, sub), { recursive: true });
  symlinkSync(shared('conformance-sdxl', 'models', CKPT), join(models, 'checkpoints', CKPT));
  symlinkSync(shared('clip-tokenizer'), join(models, 'tokenizers', CLIP_L_TOKENIZER));
  symlinkSync(shared('conformance-sdxl-next', 'models', 'embeddings'), join(models, 'embeddings'));
  const m = readJson(join(shared('conformance-sdxl-next', 'lora-sdxl-kohya'), 'case.json')).models.checkpoint;
  const sidecar = { unet_config: { num_head_channels: m.unet_config_comfy.num_head_channels }, clip_l_config: m.clip_l_config, clip_g_config: m.clip_g_config };
  writeFileSync(join(models, 'checkpoints', CKPT.replace(/\.safetensors$/, '.resflow.json')), JSON.stringify(sidecar));
  return dir;
}

describe('CLIPTextEncode on SDXL with embedding:name (ComfyUI numbers of embeddings-sdxl)', () => {
  let registry: NodeRegistry;
  let clip: ClipValue;
  const ctx = {} as NodeContext;
  beforeAll(async () => {
    registry = createCoreRegistry(createRuntimeEnv({ dataDir: dataDir() }));
    [, clip] = (await registry.require('CheckpointLoaderSimple').spec.execute({ ckpt_name: CKPT }, ctx)) as [unknown, ClipValue];
  });

  it('every prompt of the case: context and pooled through the node, warnings as ComfyUI logs them', async () => {
    const expected = SafetensorsFile.open(join(CASE, 'expected.safetensors'));
    const prompts = readJson(join(CASE, 'case.json')).params.prompts as { name: string; text: string; tokenize_warnings: string[]; l_encode_warnings: string[]; g_encode_warnings: string[] }[];
    expect(prompts.length).toBe(5);
    const tol = { atol: 1e-4, rtol: 1e-4 };
    for (const p of prompts) {
      const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
      const [cond] = (await registry.require('CLIPTextEncode').spec.execute({ text: p.text, clip }, ctx)) as [ConditioningValue];
      const logged = warn.mock.calls.map((c) => String(c[0]));
      warn.mockRestore();
      expect(logged, p.name).toEqual([...p.tokenize_warnings, ...p.l_encode_warnings, ...p.g_encode_warnings]);
      for (const [name, actual] of [
        ['context', cond.context],
        ['pooled', cond.pooled!],
      ] as const) {
        const r = compareTensor(`${p.name}/${name}`, actual, expected.readFloat32(`${p.name}/${name}`), tol);
        expect(r.pass, `${r.tensor}: ${r.maxError} > ${r.limit}`).toBe(true);
      }
    }
  });
});
