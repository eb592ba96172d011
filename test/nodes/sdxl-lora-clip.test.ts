import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLIP_L_TOKENIZER } from '../../runtime/pipeline/sd1-loader.js';
import { encodePatchedSdxl } from '../../runtime/pipeline/patched-text.js';
import { SdxlTextEncoder } from '../../runtime/models/sdxl/conditioning.js';
import { clipEncoder, openClipEncoder } from '../../nodes/core/clip-value.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import { createRuntimeEnv } from '../../nodes/env.js';
import { createCoreRegistry } from '../../nodes/core/index.js';
import type { NodeRegistry } from '../../nodes/registry.js';
import type { NodeContext } from '../../nodes/spec.js';
import type { ClipValue, ConditioningValue, ModelValue } from '../../nodes/core/types.js';
import { closeness, readJson, shared } from '../adapters/helpers.js';

const CASE = shared('conformance-sdxl-next', 'lora-sdxl-kohya');
const CKPT = 'tiny-sdxl-a.safetensors';
const LORA = 'lora-sdxl-kohya-a.safetensors';

/** A data folder holding the tiny SDXL checkpoint (with its head/config sidecar), the kohya SDXL LoRA and the tokenizer. */
function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'resflow-sdxl-lora-clip-'));
  const models = join(dir, 'models');
  for (const sub of ['checkpoints', 'loras', 'tokenizers']) mkdirSync(join(models, sub), { recursive: true });
  symlinkSync(shared('conformance-sdxl', 'models', CKPT), join(models, 'checkpoints', CKPT));
  symlinkSync(shared('conformance-sdxl-next', 'models', 'loras', LORA), join(models, 'loras', LORA));
  symlinkSync(shared('clip-tokenizer'), join(models, 'tokenizers', CLIP_L_TOKENIZER));
  const m = readJson(join(CASE, 'case.json')).models.checkpoint;
  const sidecar = { unet_config: { num_head_channels: m.unet_config_comfy.num_head_channels }, clip_l_config: m.clip_l_config, clip_g_config: m.clip_g_config };
  writeFileSync(join(models, 'checkpoints', CKPT.replace(/\.safetensors$/, '.resflow.json')), JSON.stringify(sidecar));
  return dir;
}

async function run(registry: NodeRegistry, node: string, inputs: Record<string, unknown>): Promise<unknown[]> {
  const def = registry.get(node);
  if (!def) throw new Error(`no node ${node}`);
  const out = await def.spec.execute(inputs, {} as NodeContext);
  return (Array.isArray(out) ? out : (out as { result: unknown[] }).result) as unknown[];
}

/** The CLIP value's two encoders as the runtime's SDXL pair. */
function sdxlPair(c: ClipValue) {
  const clipL = clipEncoder(c, 'clip_l');
  const clipG = openClipEncoder(c, 'clip_g');
  return { base: SdxlTextEncoder.of(clipL.base, clipG.base), clipL, clipG };
}

describe('LoraLoader on SDXL applies the text-encoder part to both encoders (ComfyUI numbers)', () => {
  let registry: NodeRegistry;
  let model: ModelValue;
  let clip: ClipValue;
  beforeAll(async () => {
    const env = createRuntimeEnv({ dataDir: dataDir() });
    registry = createCoreRegistry(env);
    [model, clip] = (await run(registry, 'CheckpointLoaderSimple', { ckpt_name: CKPT })) as [ModelValue, ClipValue];
  });

  it('strength_clip patches CLIP-L (lora_te1) and bigG (lora_te2): context and pooled match ComfyUI', async () => {
    const p = readJson(join(CASE, 'case.json')).params;
    const [, patched] = (await run(registry, 'LoraLoader', { model, clip, lora_name: LORA, strength_model: p.strength_model, strength_clip: p.strength_clip })) as [ModelValue, ClipValue];
    expect(patched.family).toBe('sdxl');
    expect(patched.encoders.map((e) => [e.spec.name, e.encoder.isPatched])).toEqual([
      ['clip_l', true],
      ['clip_g', true],
    ]);
    const inputs = SafetensorsFile.open(join(CASE, 'inputs.safetensors'));
    const expected = SafetensorsFile.open(join(CASE, 'expected.safetensors'));
    const ids = (k: string) => Array.from(inputs.readFloat32(k), Number);
    const r = await encodePatchedSdxl(sdxlPair(patched), { l: { tokens: [ids('tokens_l')] }, g: { tokens: [ids('tokens_g')] } }, patched.clipSkip);
    const tol = { atol: 1e-4, rtol: 1e-4 };
    expect(closeness(r.context, expected.readFloat32('context'), tol).pass).toBe(true);
    expect(closeness(r.pooled, expected.readFloat32('pooled'), tol).pass).toBe(true);
    // The unpatched CLIP the loader gave is untouched, and ComfyUI's base numbers still come out of it.
    const base = await sdxlPair(clip).base.encodeTokens({ l: { tokens: [ids('tokens_l')] }, g: { tokens: [ids('tokens_g')] } });
    expect(closeness(base.context, expected.readFloat32('context_base'), tol).pass).toBe(true);
  });

  it('CLIPTextEncode uses the patched encoders; strength_clip 0 leaves the text encoders alone', async () => {
    const [, withLora] = (await run(registry, 'LoraLoader', { model, clip, lora_name: LORA, strength_model: 1, strength_clip: 1 })) as [ModelValue, ClipValue];
    const [, modelOnly] = (await run(registry, 'LoraLoader', { model, clip, lora_name: LORA, strength_model: 1, strength_clip: 0 })) as [ModelValue, ClipValue];
    expect(modelOnly.encoders.map((e) => e.encoder)).toEqual(clip.encoders.map((e) => e.encoder));
    expect(modelOnly.encoders.some((e) => e.encoder.isPatched)).toBe(false);
    const [a] = (await run(registry, 'CLIPTextEncode', { clip: withLora, text: 'a photo of a cat' })) as [ConditioningValue];
    const [b] = (await run(registry, 'CLIPTextEncode', { clip, text: 'a photo of a cat' })) as [ConditioningValue];
    let diff = 0;
    for (let i = 0; i < a.context.length; i++) diff = Math.max(diff, Math.abs(a.context[i]! - b.context[i]!));
    expect(diff).toBeGreaterThan(1e-3);
  });

  it("CLIPMergeSimple takes clip2's LoRA with its weights (ratio 0 = clip2 as patched)", async () => {
    const [, withLora] = (await run(registry, 'LoraLoader', { model, clip, lora_name: LORA, strength_model: 1, strength_clip: 1 })) as [ModelValue, ClipValue];
    const [merged] = (await run(registry, 'CLIPMergeSimple', { clip1: clip, clip2: withLora, ratio: 0 })) as [ClipValue];
    expect(merged.encoders.some((e) => e.encoder.isPatched)).toBe(false);
    const text = 'a photo of a cat';
    const [a] = (await run(registry, 'CLIPTextEncode', { clip: merged, text })) as [ConditioningValue];
    const [b] = (await run(registry, 'CLIPTextEncode', { clip: withLora, text })) as [ConditioningValue];
    const [c] = (await run(registry, 'CLIPTextEncode', { clip, text })) as [ConditioningValue];
    const tol = { atol: 1e-4, rtol: 1e-4 };
    expect(closeness(a.context, b.context, tol).pass).toBe(true);
    expect(closeness(a.pooled!, b.pooled!, tol).pass).toBe(true);
    expect(closeness(a.context, c.context, tol).pass).toBe(false);
  });
});
