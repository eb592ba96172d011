import { describe, expect, it } from 'vitest';
import { parseLora } from '../../runtime/adapters/lora-format.js';
import { computePatchedWeights, type AdapterApplication } from '../../runtime/adapters/merge.js';
import { loadResAdapter } from '../../runtime/adapters/resadapter.js';
import { checkpointKeyShapes, loadLoraForModels } from '../../runtime/pipeline/adapter-loaders.js';
import { LoraProductCache, mergeAdapters, mergeAdaptersAsync } from '../../runtime/pipeline/adapter-merge.js';
import { ORT_PRODUCT_MIN_MACS, ortLoraProduct, wantsOrtProduct } from '../../runtime/pipeline/lora-product-ort.js';
import { loraProduct } from '../../runtime/adapters/merge.js';
import type { LoraPatch } from '../../runtime/adapters/lora-format.js';
import { PatchedUnet } from '../../runtime/pipeline/patched-model.js';
import { LORA_KOHYA, LORA_PEFT, RESADAPTER_A, bitsEqual, freshUnet, loadCase, unetInputs } from './helpers.js';

function expectSameMaps(a: ReadonlyMap<string, Float32Array> | undefined, b: ReadonlyMap<string, Float32Array>): void {
  expect(a).toBeDefined();
  expect([...a!.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [k, v] of b) expect(bitsEqual(a!.get(k)!, v), k).toBe(true);
}

describe('large LoRA products on ORT', () => {
  // One patch past the threshold (a rank-64 LoRA on a 1280×1280 layer), random values.
  const rank = 64;
  const [out, inner] = [1280, 1280];
  const rnd = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed * 78.233) * 0.1);
  const patch: LoraPatch = {
    target: 'w', source: 'test', component: 'unet', rank, alpha: 32,
    up: rnd(out * rank, 1), upShape: [out, rank], down: rnd(rank * inner, 2), downShape: [rank, inner],
  } as LoraPatch;

  it('computes the float32 product (within float32 rounding of the double-accumulated one)', async () => {
    expect(out * inner * rank).toBeGreaterThanOrEqual(ORT_PRODUCT_MIN_MACS);
    expect(wantsOrtProduct(patch)).toBe(true);
    const exact = loraProduct(patch);
    const fast = await ortLoraProduct(patch);
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < exact.length; i++) {
      worst = Math.max(worst, Math.abs(fast[i]! - exact[i]!));
      scale = Math.max(scale, Math.abs(exact[i]!));
    }
    expect(worst).toBeGreaterThan(0); // float32 sums, not the JS loop's double
    expect(worst / scale).toBeLessThan(1e-5);
  });

  it('mergeAdaptersAsync merges like mergeAdapters, norms and order included', async () => {
    const base = rnd(out * inner, 3);
    const lookup = (k: string) => (k === 'w' ? base : undefined);
    const stack: AdapterApplication[] = [{ patches: [patch], strength: 0.6 }, { patches: [patch], strength: -0.2 }];
    const want = mergeAdapters(lookup, stack, new LoraProductCache(0)).get('w')!;
    const got = (await mergeAdaptersAsync(lookup, stack, new LoraProductCache(0))).get('w')!;
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
    expect(worst).toBeLessThan(1e-6);
    expect(Math.abs(got[5]! - base[5]!)).toBeGreaterThan(1e-4);
  });
});

describe('adapter stacks', () => {
  const c = loadCase('lora-resadapter');
  const unet = freshUnet(c);
  const file = unet.weights.file;
  const lookup = (k: string) => (file.has(k) ? file.readFloat32(k) : undefined);
  const table = checkpointKeyShapes(file);
  const ra = loadResAdapter(RESADAPTER_A, table);
  const peft = parseLora(LORA_PEFT, table).patches;
  const kohyaUnet = parseLora(LORA_KOHYA, table).patches.filter((p) => p.component === 'unet');
  // Stand-ins for a second norm source: the ResAdapter's norms, shifted.
  const otherNorms = new Map([...ra.norms].map(([k, v]) => [k, Float32Array.from(v, (x) => x * 0.5 + 0.25)]));

  it('mergeAdapters (and its async form, small patches) is computePatchedWeights bit for bit, with and without cached products', async () => {
    const stack: AdapterApplication[] = [
      { patches: ra.patches, norms: ra.norms, strength: 0.7, normStrength: 0.5 },
      { patches: peft, strength: 1 },
      { patches: kohyaUnet, strength: -0.8 },
      { patches: peft, norms: otherNorms, strength: 0 },
    ];
    const want = computePatchedWeights(lookup, stack);
    const cache = new LoraProductCache(64 << 20);
    expectSameMaps(mergeAdapters(lookup, stack, cache), want);
    expectSameMaps(mergeAdapters(lookup, stack, cache), want);
    expect(cache.hits).toBeGreaterThan(0);
    expectSameMaps(mergeAdapters(lookup, stack, new LoraProductCache(0)), want);
    expectSameMaps(await mergeAdaptersAsync(lookup, stack, new LoraProductCache(0)), want);
  });

  it('stacks in order: ResAdapter + LCM-style LoRA + style LoRA, later norms win', async () => {
    const base = PatchedUnet.of(unet);
    const withRa = base.withAdapter({ id: 'resadapter', patches: ra.patches, norms: ra.norms, strength: 1 });
    const lcm = withRa.withAdapter({ id: 'lcm', patches: peft, strength: 1 });
    const style = loadLoraForModels(lcm, undefined, LORA_KOHYA, 0.8, 0, { id: 'style' }).model!;
    expect(style.adapters.map((a) => a.id)).toEqual(['resadapter', 'lcm', 'style']);
    expectSameMaps(
      style.overrides(),
      computePatchedWeights(lookup, [
        { patches: ra.patches, norms: ra.norms, strength: 1 },
        { patches: peft, strength: 1 },
        { patches: kohyaUnet, strength: 0.8 },
      ]),
    );
    // The handles below are untouched by what was stacked on them.
    expect(withRa.adapters.map((a) => a.id)).toEqual(['resadapter']);
    expect(style.without('lcm').adapters.map((a) => a.id)).toEqual(['resadapter', 'style']);

    const key = [...ra.norms.keys()][0]!;
    const second = { id: 'norms-b', patches: [], norms: otherNorms, strength: 1 };
    expect(bitsEqual(withRa.withAdapter(second).overrides()!.get(key)!, otherNorms.get(key)!)).toBe(true);
    const reversed = base.withAdapter(second).withAdapter({ id: 'resadapter', patches: ra.patches, norms: ra.norms, strength: 1 });
    expect(bitsEqual(reversed.overrides()!.get(key)!, ra.norms.get(key)!)).toBe(true);
    // A partial blend of the later adapter starts from what the earlier one left.
    const blended = withRa.withAdapter({ ...second, normStrength: 0.5 }).overrides()!.get(key)!;
    const a = ra.norms.get(key)!;
    const b = otherNorms.get(key)!;
    expect(blended[0]).toBe(Math.fround(a[0]! + 0.5 * (b[0]! - a[0]!)));

    // The stacked handle feeds exactly those weights to the session.
    const { x, t, ctx } = unetInputs(c);
    const direct = await unet.eps(x, t, ctx, { overrides: style.overrides()! });
    expect(bitsEqual((await style.eps(x, t, ctx)).data as Float32Array, direct.data as Float32Array)).toBe(true);
    // So does the sampler's EpsModel built from it.
    const [B, C, H, W] = x.dims as number[];
    const cond = { context: ctx.data as Float32Array, contextShape: ctx.dims as [number, number, number], controls: [], condOrUncond: [] };
    const viaSampler = await style.epsModel()(x.data as Float32Array, [B!, C!, H!, W!], t[0]!, cond);
    const sameT = await unet.eps(x, new Float32Array(t.length).fill(t[0]!), ctx, { overrides: style.overrides()! });
    expect(bitsEqual(viaSampler, sameT.data as Float32Array)).toBe(true);
  });

  it('stacking one file twice gives each copy its own id', () => {
    const one = loadLoraForModels(PatchedUnet.of(unet), undefined, LORA_PEFT, 1, 0).model!;
    const two = loadLoraForModels(one, undefined, LORA_PEFT, 0.5, 0).model!;
    expect(two.adapters.map((a) => a.id)).toEqual(['pytorch_lora_weights.safetensors', 'pytorch_lora_weights.safetensors#2']);
    expect(() => two.withStrength('nope', 1)).toThrow(/no adapter "nope"/);
  });

  it('the product cache stays within its byte budget', () => {
    const sizes = ra.patches.map((p) => p.upShape[0]! * (p.downShape.slice(1).reduce((x, y) => x * y, 1)) * 4);
    const cache = new LoraProductCache(Math.max(...sizes));
    for (const p of ra.patches) cache.product(p);
    expect(cache.sizeBytes).toBeLessThanOrEqual(Math.max(...sizes));
    const tiny = new LoraProductCache(16);
    tiny.product(ra.patches[0]!);
    expect(tiny.sizeBytes).toBe(0);
  });
});
