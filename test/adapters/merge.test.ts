import { describe, expect, it } from 'vitest';
import { keyShapesOf, sd15KeyShapes } from '../../runtime/adapters/arch-tables.js';
import { parseLora, type LoraPatch } from '../../runtime/adapters/lora-format.js';
import { applyLora, blendNorm, computePatchedWeights, loraProduct, loraScale } from '../../runtime/adapters/merge.js';
import { loadResAdapter } from '../../runtime/adapters/resadapter.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import { caseTolerance, closeness, memSource, readJson, shared } from './helpers.js';

/** Straightforward float64 reference of W + strength·(alpha/rank)·up@down, independent of merge.ts. */
function naiveMerge(w: Float32Array, p: LoraPatch, strength: number): Float64Array {
  const out = Float64Array.from(w);
  const r = p.rank;
  const rows = p.upShape[0]!;
  const inner = p.down.length / r;
  const scale = strength * (p.alpha === undefined ? 1 : p.alpha / r);
  const off = p.rows ? p.rows.start * inner : 0;
  for (let o = 0; o < rows; o++) {
    for (let c = 0; c < inner; c++) {
      let s = 0;
      for (let j = 0; j < r; j++) s += p.up[o * r + j]! * p.down[j * inner + c]!;
      out[off + o * inner + c] += scale * s;
    }
  }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** A base lookup that serves the same arrays every time, so the test can check they are never written. */
function frozenBase(file: SafetensorsFile) {
  const cache = new Map<string, Float32Array>();
  const lookup = (k: string) => {
    if (!file.has(k)) return undefined;
    if (!cache.has(k)) cache.set(k, file.readFloat32(k));
    return cache.get(k);
  };
  const untouched = () => [...cache].every(([k, v]) => maxAbsDiff(v, file.readFloat32(k)) === 0);
  return { lookup, untouched };
}

describe('merge math', () => {
  const patch = (over: Partial<LoraPatch> = {}): LoraPatch => ({
    target: 'w',
    up: Float32Array.from([1, 2, 3, 4, 5, 6]), // [3, 2]
    upShape: [3, 2],
    down: Float32Array.from([0.5, -1, 0.25, 2, 1, -0.5, 0, 1]), // [2, 4]
    downShape: [2, 4],
    alpha: 1,
    rank: 2,
    component: 'unet',
    source: 'test',
    ...over,
  });

  it('W + strength·(alpha/rank)·up@down, alpha absent → factor 1', () => {
    const w = Float32Array.from({ length: 12 }, (_, i) => i / 10);
    const p = patch();
    expect(maxAbsDiff(applyLora(w, p, 0.7), naiveMerge(w, p, 0.7))).toBeLessThan(1e-6);
    expect(loraScale(p, 0.7)).toBeCloseTo(0.35, 7);
    expect(loraScale({ alpha: undefined, rank: 2 }, 0.7)).toBeCloseTo(0.7, 7);
    const q = patch({ alpha: undefined });
    expect(maxAbsDiff(applyLora(w, q, 1), naiveMerge(w, q, 1))).toBeLessThan(1e-6);
    // row 0 of up@down: 1·[0.5, -1, 0.25, 2] + 2·[1, -0.5, 0, 1]
    expect(Array.from(loraProduct(p)).slice(0, 4)).toEqual([2.5, -2, 0.25, 4]);
    expect(Array.from(w)).toEqual(Array.from({ length: 12 }, (_, i) => Math.fround(i / 10)));
  });

  it('LoCon mid folding and row-sliced targets', () => {
    // down [r=2, in=2, 1, 1], mid [2, 2, 1, 2] → effective down [2, 2, 1, 2]
    const p = patch({
      up: Float32Array.from([1, 0, 0, 1]),
      upShape: [2, 2, 1, 1],
      down: Float32Array.from([1, 2, 3, 4]),
      downShape: [2, 2, 1, 1],
      mid: Float32Array.from([1, 0, 0, 0, 0, 1, 1, 1]),
      midShape: [2, 2, 1, 2],
      alpha: undefined,
    });
    // eff[a,i,x] = Σ_b mid[a,b,x]·down[b,i], worked out by hand; up is the identity.
    const expected = [1, 0, 2, 0, 3, 4, 4, 6];
    expect(Array.from(loraProduct(p))).toEqual(expected);
    const sliced = patch({ rows: { start: 1, count: 3 } });
    const w = new Float32Array(5 * 4);
    const out = applyLora(w, sliced, 1);
    expect(Array.from(out.subarray(0, 4))).toEqual([0, 0, 0, 0]);
    expect(Array.from(out.subarray(16))).toEqual([0, 0, 0, 0]);
    expect(maxAbsDiff(out, naiveMerge(w, sliced, 1))).toBeLessThan(1e-6);
  });

  it('norms replace at strength ≠ 0, blend with normStrength, stack in order, inputs untouched', () => {
    const base = new Map([
      ['n', Float32Array.from([1, 1])],
      ['w', new Float32Array(12)],
    ]);
    const lookup = (k: string) => base.get(k);
    const normsA = new Map([['n', Float32Array.from([3, 5])]]);
    const normsB = new Map([['n', Float32Array.from([-1, 0])]]);
    const p = patch();
    expect(computePatchedWeights(lookup, [{ patches: [p], norms: normsA, strength: 0 }]).size).toBe(0);
    const full = computePatchedWeights(lookup, [{ patches: [p], norms: normsA, strength: 1 }]);
    expect(Array.from(full.get('n')!)).toEqual([3, 5]);
    expect(full.get('n')).not.toBe(normsA.get('n'));
    const half = computePatchedWeights(lookup, [{ patches: [], norms: normsA, strength: 1, normStrength: 0.5 }]);
    expect(Array.from(half.get('n')!)).toEqual([2, 3]);
    expect(computePatchedWeights(lookup, [{ patches: [], norms: normsA, strength: 1, normStrength: 0 }]).size).toBe(0);
    expect(Array.from(computePatchedWeights(lookup, [{ patches: [], norms: normsA, strength: -1 }]).get('n')!)).toEqual([3, 5]);

    const stacked = computePatchedWeights(lookup, [
      { patches: [p], norms: normsA, strength: 1 },
      { patches: [p], norms: normsB, strength: 0.5, normStrength: 0.5 },
    ]);
    expect(Array.from(stacked.get('n')!)).toEqual([1, 2.5]);
    const twice = naiveMerge(Float32Array.from(naiveMerge(new Float32Array(12), p, 1)), p, 0.5);
    expect(maxAbsDiff(stacked.get('w')!, twice)).toBeLessThan(1e-6);
    expect([...stacked.keys()].sort()).toEqual(['n', 'w']);
    expect(Array.from(base.get('n')!)).toEqual([1, 1]);
    expect(Array.from(base.get('w')!)).toEqual(new Array(12).fill(0));
    expect(Array.from(normsA.get('n')!)).toEqual([3, 5]);
    expect(() => blendNorm(Float32Array.from([1]), Float32Array.from([1, 2]), 1, 'k')).toThrow(/k:/);
    expect(() => computePatchedWeights(() => undefined, [{ patches: [p], strength: 1 }])).toThrow(/w: the model has no such tensor/);
  });
});

describe('conformance: merged weights', () => {
  for (const [name, dir, ckpt, adapterDir] of [
    ['lora-resadapter', 'conformance/lora-resadapter', 'conformance/models/tiny-sd15-a.safetensors', 'conformance/models/resadapter-a'],
    [
      'lora-resadapter-sdxl',
      'conformance-sdxl/lora-resadapter-sdxl',
      'conformance-sdxl/models/tiny-sdxl-a.safetensors',
      'conformance-sdxl/models/resadapter-sdxl-a',
    ],
  ] as const) {
    it(`${name}: strengths 0.5 and 1.0 match ComfyUI's merged weights`, () => {
      const c = readJson(shared(dir, 'case.json'));
      const expectedFile = SafetensorsFile.open(shared(dir, 'expected.safetensors'));
      const file = SafetensorsFile.open(shared(ckpt));
      const { lookup, untouched } = frozenBase(file);
      const adapter = loadResAdapter(shared(adapterDir), keyShapesOf(file));
      const normFile = SafetensorsFile.open(shared(adapterDir, 'diffusion_pytorch_model.safetensors'));
      const mapping: Record<string, string> = c.models.resadapter.diffusers_to_ldm;
      const strengths: number[] = c.params.strengths;
      expect(strengths).toEqual([0.5, 1.0]);
      let compared = 0;
      for (const s of strengths) {
        const merged = computePatchedWeights(lookup, [{ patches: adapter.patches, norms: adapter.norms, strength: s }]);
        expect(merged.size).toBe(adapter.patches.length + normFile.keys().length);
        for (const [diffusers, ldm] of Object.entries(mapping)) {
          if (!normFile.has(diffusers)) continue;
          expect(Array.from(merged.get(`model.diffusion_model.${ldm}`)!), ldm).toEqual(Array.from(normFile.readFloat32(diffusers)));
        }
        const prefix = `alpha_${s.toFixed(1)}/weights/`;
        for (const key of expectedFile.keys().filter((k) => k.startsWith(prefix))) {
          const ldm = key.slice(prefix.length);
          const r = closeness(merged.get(`model.diffusion_model.${ldm}`)!, expectedFile.readFloat32(key), caseTolerance(c, key));
          expect(r.pass, `${key}: max diff ${r.maxDiff} > ${r.limit}`).toBe(true);
          compared++;
        }
      }
      expect(compared).toBe(2 * adapter.patches.length);
      expect(computePatchedWeights(lookup, [{ patches: adapter.patches, norms: adapter.norms, strength: 0 }]).size).toBe(0);
      expect(untouched()).toBe(true);
    });
  }

  it('lora-peft: strength 1, no alpha, reproduces lora-resadapter\'s merged weights at 1.0', () => {
    // The peft file is resadapter-a's LoRA with alpha/rank (0.5) folded into lora_B, so W + B@A at strength 1
    // must equal ComfyUI's alpha_1.0 weights of the lora-resadapter case (norm replacement does not touch convs).
    const c = readJson(shared('conformance/lora-resadapter/case.json'));
    const file = SafetensorsFile.open(shared('conformance/models/tiny-sd15-a.safetensors'));
    const { lookup, untouched } = frozenBase(file);
    const { patches } = parseLora(shared('conformance/models/lora-peft-a/pytorch_lora_weights.safetensors'), keyShapesOf(file));
    const ra = parseLora(shared('conformance/models/resadapter-a/pytorch_lora_weights.safetensors'), keyShapesOf(file));
    for (let i = 0; i < patches.length; i++) {
      expect(maxAbsDiff(patches[i]!.down, ra.patches[i]!.down)).toBe(0);
      expect(maxAbsDiff(patches[i]!.up, ra.patches[i]!.up.map((v) => v * 0.5))).toBe(0);
    }
    const strength = readJson(shared('conformance/lora-peft/case.json')).params.strength_model;
    expect(strength).toBe(1);
    const merged = computePatchedWeights(lookup, [{ patches, strength }]);
    expect(merged.size).toBe(2);
    const expectedFile = SafetensorsFile.open(shared('conformance/lora-resadapter/expected.safetensors'));
    for (const p of patches) {
      const key = `alpha_1.0/weights/${p.target.replace('model.diffusion_model.', '')}`;
      const r = closeness(merged.get(p.target)!, expectedFile.readFloat32(key), caseTolerance(c, key));
      expect(r.pass, `${p.target}: ${r.maxDiff} > ${r.limit}`).toBe(true);
    }
    expect(untouched()).toBe(true);
  });

  it('lora-kohya: every UNet and CLIP layer merges at strengths 0.8 / 0.6 as the float64 formula says', () => {
    const c = readJson(shared('conformance/lora-kohya/case.json'));
    const file = SafetensorsFile.open(shared('conformance/models/tiny-sd15-a.safetensors'));
    const { lookup, untouched } = frozenBase(file);
    const { patches } = parseLora(shared('conformance/models/lora-kohya-a/lora.safetensors'), keyShapesOf(file));
    const { strength_model, strength_clip } = c.params;
    const merged = computePatchedWeights(lookup, [
      { patches: patches.filter((p) => p.component === 'unet'), strength: strength_model },
      { patches: patches.filter((p) => p.component === 'clip'), strength: strength_clip },
    ]);
    expect(merged.size).toBe(patches.length);
    for (const p of patches) {
      const ref = naiveMerge(lookup(p.target)!, p, p.component === 'unet' ? strength_model : strength_clip);
      expect(maxAbsDiff(merged.get(p.target)!, ref), p.source).toBeLessThan(2e-7);
    }
    expect(untouched()).toBe(true);
  });
});

describe('full-size merge', () => {
  it('merges the six SD1.5 ResAdapter convs (rank 16, up to 1280 channels) within seconds', () => {
    const table = sd15KeyShapes();
    const { patches } = parseLora(shared('resadapter/resadapter_v2_sd1.5/pytorch_lora_weights.safetensors'), table);
    const base = (k: string) => new Float32Array(table.get(k)!.reduce((a, b) => a * b, 1));
    const t0 = performance.now();
    const merged = computePatchedWeights(base, [{ patches, strength: 1 }]);
    expect(performance.now() - t0).toBeLessThan(30_000);
    expect(merged.size).toBe(6);
    // Spot-check one element per layer against the formula.
    for (const p of patches) {
      const inner = p.down.length / p.rank;
      const o = p.upShape[0]! - 1;
      const c = inner - 1;
      let s = 0;
      for (let j = 0; j < p.rank; j++) s += p.up[o * p.rank + j]! * p.down[j * inner + c]!;
      expect(merged.get(p.target)![o * inner + c]).toBeCloseTo((p.alpha! / p.rank) * s, 6);
    }
  });
});
