import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sd15KeyShapes } from '../../runtime/adapters/arch-tables.js';
import { LoraError } from '../../runtime/adapters/lora-format.js';
import { ResAdapterError, loadResAdapter } from '../../runtime/adapters/resadapter.js';
import { runConformance } from '../../runtime/conformance/runner.js';
import { CLIP_OUTPUTS } from '../../runtime/models/clip/index.js';
import { applyResAdapter, checkpointKeyShapes, loadLoraForModels } from '../../runtime/pipeline/adapter-loaders.js';
import { LoraProductCache } from '../../runtime/pipeline/adapter-merge.js';
import { AdapterMismatchError, PatchedClip, PatchedUnet } from '../../runtime/pipeline/patched-model.js';
import { writeSafetensors } from '../../runtime/safetensors/index.js';
import {
  CONFORMANCE_DIR, LORA_KOHYA, LORA_PEFT, RESADAPTER_A, RESADAPTER_DIR, bitsEqual, expectClose, freshClip, freshUnet, loadCase, maxAbsDiff, unetInputs,
} from './helpers.js';

const CASES = ['lora-resadapter', 'lora-peft', 'lora-kohya'];

describe('adapter conformance through the runner', () => {
  it('lora-resadapter, lora-peft and lora-kohya pass with every non-debug tensor checked', async () => {
    const rep = await runConformance(CONFORMANCE_DIR, { only: CASES });
    expect(rep.cases.map((c) => c.case)).toEqual(CASES);
    for (const c of rep.cases) {
      expect(c.error, `${c.case}: ${c.error}`).toBeUndefined();
      expect(c.pass, c.case).toBe(true);
    }
    const byCase = Object.fromEntries(rep.cases.map((c) => [c.case, c.results.map((r) => r.tensor).sort()]));
    expect(byCase['lora-resadapter']).toEqual([
      'alpha_0.5/eps', 'alpha_0.5/weights/input_blocks.2.0.op.weight', 'alpha_0.5/weights/output_blocks.1.2.conv.weight',
      'alpha_1.0/eps', 'alpha_1.0/weights/input_blocks.2.0.op.weight', 'alpha_1.0/weights/output_blocks.1.2.conv.weight', 'eps_base',
    ]);
    expect(byCase['lora-kohya']).toEqual(['clip/last_hidden_state', 'clip/last_hidden_state_base', 'eps', 'eps_base']);
    expect(byCase['lora-peft']).toEqual(['eps', 'eps_base']);
  });
});

describe('patched handles on the tiny SD1.5 model', () => {
  const ra = loadCase('lora-resadapter');
  const peft = loadCase('lora-peft');
  const kohya = loadCase('lora-kohya');
  let tmp: string;

  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'resflow-patched-'));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('ResAdapter at 0.5 and 1.0 matches ComfyUI, merged weights included', async () => {
    const base = PatchedUnet.of(freshUnet(ra));
    const { x, t, ctx } = unetInputs(ra);
    const half = applyResAdapter(base, RESADAPTER_A, 0.5).model;
    for (const [prefix, h] of [['alpha_0.5/', half], ['alpha_1.0/', half.withStrength(half.adapters[0]!.id, 1)]] as const) {
      expectClose(ra, `${prefix}eps`, (await h.eps(x, t, ctx)).data as Float32Array);
      expectClose(ra, `${prefix}weights/input_blocks.2.0.op.weight`, h.overrides()!.get('model.diffusion_model.input_blocks.2.0.op.weight')!);
    }
    expectClose(ra, 'eps_base', (await base.eps(x, t, ctx)).data as Float32Array);
  });

  it('peft LoRA (model only) and kohya LoRA (model 0.8, clip 0.6) match ComfyUI', async () => {
    const p = unetInputs(peft);
    const peftModel = loadLoraForModels(PatchedUnet.of(freshUnet(peft)), undefined, LORA_PEFT, 1, 0).model!;
    expectClose(peft, 'eps', (await peftModel.eps(p.x, p.t, p.ctx)).data as Float32Array);

    const k = unetInputs(kohya);
    const baseModel = PatchedUnet.of(freshUnet(kohya));
    const baseClip = PatchedClip.of(await freshClip(kohya));
    const { model, clip, warnings } = loadLoraForModels(baseModel, baseClip, LORA_KOHYA, 0.8, 0.6);
    expect(warnings).toEqual([]);
    expect(model!.adapters[0]!.patches.length).toBeGreaterThan(50);
    expect(clip!.adapters[0]!.patches.every((q) => q.component === 'clip')).toBe(true);
    expectClose(kohya, 'eps', (await model!.eps(k.x, k.t, k.ctx)).data as Float32Array);
    const tokens = Array.from(kohya.input('tokens').data, Number);
    expectClose(kohya, 'clip/last_hidden_state', (await clip!.run([tokens]))[CLIP_OUTPUTS.last]!.data as Float32Array);
    // encodeTokens goes through the same overrides (clip skip 1 = last layer, final-LN'd).
    expectClose(kohya, 'clip/last_hidden_state', (await clip!.encodeTokens([tokens])).cond);
    expectClose(kohya, 'clip/last_hidden_state_base', (await baseClip.encodeTokens([tokens])).cond);
    expectClose(kohya, 'eps_base', (await baseModel.eps(k.x, k.t, k.ctx)).data as Float32Array);
  });

  it('is non-destructive: the base branch stays bit-identical to a model never patched', async () => {
    const { x, t, ctx } = unetInputs(ra);
    const never = (await freshUnet(ra).eps(x, t, ctx)).data as Float32Array;
    const base = PatchedUnet.of(freshUnet(ra));
    const before = (await base.eps(x, t, ctx)).data as Float32Array;
    const patched = applyResAdapter(base, RESADAPTER_A, 1).model;
    const withRa = (await patched.eps(x, t, ctx)).data as Float32Array;
    const after = (await base.eps(x, t, ctx)).data as Float32Array;
    expect(bitsEqual(before, never)).toBe(true);
    expect(bitsEqual(after, never)).toBe(true);
    expect(maxAbsDiff(withRa, never)).toBeGreaterThan(0.1);
    expect(base.adapters).toEqual([]);
    expect(Object.isFrozen(patched.adapters) && Object.isFrozen(patched.adapters[0])).toBe(true);
    expect(base.overrides()).toBeUndefined();
    expect(patched.adapters.map((a) => a.id)).toEqual(['resadapter-a']);
    // Interleaved branches: the patched one still gives its own result after the base ran again.
    expect(bitsEqual((await patched.eps(x, t, ctx)).data as Float32Array, withRa)).toBe(true);
  });

  it('strength 0 leaves the model untouched, norms included (ComfyUI-ResAdapter)', async () => {
    const { x, t, ctx } = unetInputs(ra);
    const base = PatchedUnet.of(freshUnet(ra));
    const zero = applyResAdapter(base, RESADAPTER_A, 0).model;
    expect(zero.isPatched).toBe(false);
    expect(zero.overrides()).toBeUndefined();
    expect(bitsEqual((await zero.eps(x, t, ctx)).data as Float32Array, (await base.eps(x, t, ctx)).data as Float32Array)).toBe(true);
    // normStrength 0 keeps the base norms but still merges the LoRA.
    const loraOnly = zero.withStrength('resadapter-a', 1, 0).overrides()!;
    expect([...loraOnly.keys()].every((k) => /\.(op|conv)\.weight$/.test(k))).toBe(true);
  });

  it('changing alpha reuses the compiled session and the cached LoRA products', async () => {
    const unet = freshUnet(ra);
    const cache = new LoraProductCache(64 << 20);
    const base = PatchedUnet.of(unet, cache);
    const { x, t, ctx } = unetInputs(ra);
    await base.eps(x, t, ctx);
    const session = await unet.session(false);
    let h = applyResAdapter(base, RESADAPTER_A, 0.25).model;
    await h.eps(x, t, ctx);
    const misses = cache.misses;
    for (const s of [0.5, 0.75, 1, -0.5]) {
      h = h.withStrength('resadapter-a', s);
      await h.eps(x, t, ctx);
      expect(await unet.session(false)).toBe(session);
    }
    expect(cache.misses).toBe(misses);
    expect(cache.hits).toBeGreaterThanOrEqual(8);
    expect(h.overrides()).toBe(h.overrides());

    // A LoRA on attention layers widens the patchable set once; its strength changes then reuse that session.
    const k = unetInputs(kohya);
    let lora = loadLoraForModels(base, undefined, LORA_KOHYA, 0.8, 0).model!;
    await lora.eps(k.x, k.t, k.ctx);
    const widened = await unet.session(false);
    expect(widened).not.toBe(session);
    lora = lora.withStrength(lora.adapters[0]!.id, 0.3);
    await lora.eps(k.x, k.t, k.ctx);
    expect(await unet.session(false)).toBe(widened);
    // The base branch runs the widened session with the original weights: same result within float noise.
    const baseAfter = (await base.eps(k.x, k.t, k.ctx)).data as Float32Array;
    expectClose(kohya, 'eps_base', baseAfter);
  });

  it('CLIP: strength and clip-skip changes reuse the session, the base encoder is unchanged', async () => {
    const enc = await freshClip(kohya);
    const tokens = Array.from(kohya.input('tokens').data, Number);
    const base = PatchedClip.of(enc);
    const ref = (await base.encodeTokens([tokens])).cond;
    let clip = loadLoraForModels(undefined, base, LORA_KOHYA, 0, 0.6).clip!;
    const patched = (await clip.encodeTokens([tokens])).cond;
    const session = await enc.session(1);
    clip = clip.withStrength(clip.adapters[0]!.id, 1.2);
    const stronger = (await clip.encodeTokens([tokens])).cond;
    expect(await enc.session(1)).toBe(session);
    expect(maxAbsDiff(stronger, patched)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff((await base.encodeTokens([tokens])).cond, ref)).toBeLessThan(1e-5);
    const skip2 = clip.withClipSkip(2);
    expect(skip2.adapters).toBe(clip.adapters);
    expect(maxAbsDiff((await skip2.encodeTokens([tokens])).cond, stronger)).toBeGreaterThan(1e-3);
    // A weight that was never made patchable would be silently ignored by the session: refused instead.
    const baked = new Map([['cond_stage_model.transformer.text_model.final_layer_norm.weight', new Float32Array(32)]]);
    await expect(enc.run([tokens], { overrides: baked })).rejects.toThrow(/final_layer_norm\.weight" is not patchable/);
    expect(() => enc.addOverridable(['model.diffusion_model.out.2.weight'])).toThrow(/cannot patch "model\.diffusion_model\.out\.2\.weight"/);
  });

  it('refuses an SDXL ResAdapter on the SD1.5 model with a clear error', () => {
    const base = PatchedUnet.of(freshUnet(ra));
    const sdxl = join(RESADAPTER_DIR, 'resadapter_v2_sdxl');
    expect(() => applyResAdapter(base, sdxl, 1)).toThrow(ResAdapterError);
    expect(() => applyResAdapter(base, sdxl, 1)).toThrow(/made for SDXL \(3 UNet levels/);
    // Against the full-size SD1.5 layout too, where the SD1.5 adapter does load.
    expect(() => loadResAdapter(sdxl, sd15KeyShapes())).toThrow(/made for SDXL.*but the model is SD1\.5/);
    expect(loadResAdapter(join(RESADAPTER_DIR, 'resadapter_v2_sd1.5'), sd15KeyShapes()).patches).toHaveLength(6);
  });

  it('an adapter parsed for another model is refused at attach time, naming the key', () => {
    const base = PatchedUnet.of(freshUnet(ra));
    const full = loadResAdapter(join(RESADAPTER_DIR, 'resadapter_v2_sd1.5'), sd15KeyShapes());
    expect(() => applyResAdapter(base, full, 1)).toThrow(AdapterMismatchError);
    expect(() => applyResAdapter(base, full, 1)).toThrow(/model\.diffusion_model\.input_blocks\.\d+\.0\.op\.weight: LoRA module/);
  });

  it('a LoRA with a bad shape fails with an error naming the LoRA key', () => {
    const base = PatchedUnet.of(freshUnet(ra));
    const bad = join(tmp, 'bad.safetensors');
    const f16 = (shape: number[]) => ({ dtype: 'F16' as const, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.01) });
    writeSafetensors(bad, {
      'lora_unet_down_blocks_0_downsamplers_0_conv.lora_down.weight': f16([4, 16, 3, 3]),
      'lora_unet_down_blocks_0_downsamplers_0_conv.lora_up.weight': f16([32, 4, 1, 1]),
    });
    expect(() => loadLoraForModels(base, undefined, bad, 1, 0)).toThrow(LoraError);
    expect(() => loadLoraForModels(base, undefined, bad, 1, 0)).toThrow(/lora_unet_down_blocks_0_downsamplers_0_conv\.lora_down\.weight.*does not fit/);

    // A hand-built patch that does not fit names the checkpoint key it was meant for.
    const table = checkpointKeyShapes(base.base.weights.file);
    const target = 'model.diffusion_model.input_blocks.2.0.op.weight';
    expect(table.get(target)).toEqual([32, 32, 3, 3]);
    const patch = { target, up: new Float32Array(64 * 4), upShape: [64, 4, 1, 1], down: new Float32Array(4 * 288), downShape: [4, 32, 3, 3], alpha: undefined, rank: 4, component: 'unet' as const, source: 'hand_made' };
    expect(() => base.withAdapter({ id: 'x', patches: [patch], strength: 1 })).toThrow(/input_blocks\.2\.0\.op\.weight: LoRA module "hand_made": up weight \[64, 4, 1, 1\] has 64 outputs/);
  });
});
