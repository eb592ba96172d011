import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipTextEncoder, clipConfigFromHF, type ClipConfig } from '../../runtime/models/clip/index.js';
import { ModelKeyError } from '../../runtime/models/weights.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../../runtime/safetensors/index.js';
import { CONFORMANCE_DIR, loadCase, toleranceOf, type ConformanceCase, type Tolerance } from '../sampling/conformance.js';

const PREFIX = 'cond_stage_model.transformer.text_model.';
const CHECKPOINT = join(CONFORMANCE_DIR, 'models', 'tiny-sd15-a.safetensors');
const PROMPTS = ['short', 'long', 'empty'] as const;
const COMPILE = { threads: 1 };

interface Measured {
  maxDiff: number;
  limit: number;
}

function measure(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance): Measured {
  expect(actual.length).toBe(expected.length);
  let maxDiff = 0;
  let maxAbs = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    maxDiff = Number.isNaN(d) ? Infinity : Math.max(maxDiff, d);
    maxAbs = Math.max(maxAbs, Math.abs(expected[i]!));
  }
  return { maxDiff, limit: tol.atol + tol.rtol * maxAbs };
}

const report: Array<[string, Measured]> = [];

function checkTensor(c: ConformanceCase, name: string, actual: ArrayLike<number>, tol = toleranceOf(c, name)): void {
  const m = measure(actual, c.expected.readFloat32(name), tol);
  report.push([name, m]);
  expect(m.maxDiff, `${name}: max|a-e| ${m.maxDiff} > ${m.limit}`).toBeLessThanOrEqual(m.limit);
}

const windowOf = (c: ConformanceCase, name: string) => Array.from(c.inputs.readFloat32(name), Math.round);
const sub = (data: ArrayLike<number>, start: number, len: number) => Array.from({ length: len }, (_, i) => data[start + i]!);

describe('CLIP text encoder vs ComfyUI (clip case)', () => {
  let c: ConformanceCase;
  let config: Partial<ClipConfig>;
  let enc: ClipTextEncoder;
  let tmp: string;

  beforeAll(async () => {
    c = loadCase('clip');
    const json = c.json as unknown as { models: { checkpoint: { clip_config: Record<string, unknown> } } };
    config = clipConfigFromHF(json.models.checkpoint.clip_config);
    enc = await ClipTextEncoder.load(CHECKPOINT, { config, compile: COMPILE });
    tmp = mkdtempSync(join(tmpdir(), 'resflow-clip-'));
  });

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    if (report.length) console.log(report.map(([n, m]) => `${n.padEnd(28)} max|a-e| ${m.maxDiff.toExponential(2)}  limit ${m.limit.toExponential(2)}`).join('\n'));
  });

  it('infers the architecture from the checkpoint, heads from case.json', () => {
    expect(enc.weights.prefix).toBe(PREFIX);
    expect(enc.config).toEqual({
      hiddenSize: 32, numLayers: 2, numHeads: 2, intermediateSize: 64, vocabSize: 49408, maxPositions: 77, activation: 'quick_gelu', layerNormEps: 1e-5,
    });
  });

  it('cannot guess heads for narrow models and rejects overrides that contradict shapes', async () => {
    await expect(ClipTextEncoder.load(CHECKPOINT)).rejects.toThrow(/numHeads/);
    await expect(ClipTextEncoder.load(CHECKPOINT, { config: { ...config, hiddenSize: 768 } })).rejects.toThrow(/hiddenSize = 768/);
  });

  for (const p of PROMPTS) {
    it(`${p}: embeddings, raw layer states, last_hidden_state, penultimate`, async () => {
      const tokens = windowOf(c, `${p}/tokens`);
      const dbg = await enc.run([tokens], { clipSkip: 2, debug: true });
      checkTensor(c, `${p}/embeddings`, dbg.embeddings!.data as Float32Array);
      checkTensor(c, `${p}/hidden_states.1`, dbg['hidden_states.1']!.data as Float32Array);
      checkTensor(c, `${p}/hidden_states.2`, dbg['hidden_states.2']!.data as Float32Array);
      checkTensor(c, `${p}/penultimate_raw`, dbg['hidden_states.1']!.data as Float32Array);
      checkTensor(c, `${p}/last_hidden_state`, dbg.last_hidden_state!.data as Float32Array);
      checkTensor(c, `${p}/penultimate_ln`, dbg.intermediate!.data as Float32Array);
    });

    it(`${p}: encodeTokens cond/pooled, clip skip 1 and 2`, async () => {
      const tokens = windowOf(c, `${p}/tokens`);
      const r1 = await enc.encodeTokens([tokens]);
      expect(r1.condDims).toEqual([1, 77, 32]);
      expect(r1.pooledDims).toEqual([1, 32]);
      checkTensor(c, `${p}/last_hidden_state`, r1.cond);
      checkTensor(c, `${p}/pooled`, r1.pooled);
      const r2 = await enc.encodeTokens([tokens], [new Array(77).fill(1)], { clipSkip: 2 });
      checkTensor(c, `${p}/penultimate_ln`, r2.cond);
      // Pooled is always read from the last layer, whatever the skip.
      checkTensor(c, `${p}/pooled`, r2.pooled);
    });
  }

  it('weighted: (z - z_empty)·w + z_empty, pooled unaffected', async () => {
    const tokens = windowOf(c, 'weighted/tokens');
    const weights = Array.from(c.inputs.readFloat32('weighted/weights'));
    expect(weights.some((w) => w !== 1)).toBe(true);
    const r = await enc.encodeTokens([tokens], [weights]);
    checkTensor(c, 'weighted/last_hidden_state', r.cond);
    checkTensor(c, 'weighted/pooled', r.pooled);
  });

  it('runs a batch of 2 and a two-window prompt through the one session', async () => {
    const session = await enc.session(1);
    const short = windowOf(c, 'short/tokens');
    const long = windowOf(c, 'long/tokens');
    const n = 77 * 32;

    const batch = await enc.run([long, short]);
    expect(batch.last_hidden_state!.dims).toEqual([2, 77, 32]);
    const lhs = batch.last_hidden_state!.data as Float32Array;
    checkTensor(c, 'long/last_hidden_state', lhs.subarray(0, n));
    checkTensor(c, 'short/last_hidden_state', lhs.subarray(n));

    // Windows are encoded independently and joined along the sequence axis; pooled is the first window's.
    const two = await enc.encodeTokens([short, long]);
    expect(two.condDims).toEqual([1, 154, 32]);
    checkTensor(c, 'short/last_hidden_state', two.cond.subarray(0, n));
    checkTensor(c, 'long/last_hidden_state', two.cond.subarray(n));
    checkTensor(c, 'short/pooled', two.pooled);

    // A weight anywhere brings in z_empty, but only positions with weight != 1 move.
    const weights = Array.from(c.inputs.readFloat32('weighted/weights'));
    const mixed = await enc.encodeTokens([windowOf(c, 'weighted/tokens'), short], [weights, new Array(77).fill(1)]);
    expect(mixed.condDims).toEqual([1, 154, 32]);
    checkTensor(c, 'weighted/last_hidden_state', mixed.cond.subarray(0, n));
    checkTensor(c, 'short/last_hidden_state', mixed.cond.subarray(n));

    expect(await enc.session(1)).toBe(session);
    // CLIPSetLastLayer beyond the depth means the last layer in ComfyUI: same session again.
    expect(await enc.session(24)).toBe(session);
  });

  it('no windows encodes the empty prompt', async () => {
    const r = await enc.encodeTokens([]);
    checkTensor(c, 'empty/last_hidden_state', r.cond);
    checkTensor(c, 'empty/pooled', r.pooled);
    expect(enc.emptyWindow()).toEqual(windowOf(c, 'empty/tokens'));
  });

  it('rejects bad windows with a useful message', async () => {
    const short = windowOf(c, 'short/tokens');
    await expect(enc.encodeTokens([short.slice(0, 76)])).rejects.toThrow(/76 tokens/);
    await expect(enc.encodeTokens([[...short.slice(0, 5), 49408, ...short.slice(6)]])).rejects.toThrow(/49408 at window 0, position 5/);
    await expect(enc.encodeTokens([short], [[1, 2]])).rejects.toThrow(/2 weights/);
    await expect(enc.encodeTokens([short], undefined, { clipSkip: 0 })).rejects.toThrow(/clipSkip/);
  });

  /** The checkpoint's CLIP tensors with float ones stored as `dtype` (others as they are), less `drop`. */
  function copyClip(dtype: 'F16' | 'F32', drop?: string): Record<string, TensorToWrite> {
    const file = SafetensorsFile.open(CHECKPOINT);
    const out: Record<string, TensorToWrite> = {};
    for (const k of file.keys()) {
      if (!k.startsWith(PREFIX) || k === drop) continue;
      const info = file.info(k);
      if (info.dtype !== 'F32') out[k] = { dtype: info.dtype, shape: info.shape, data: file.readBytes(k) };
      else out[k] = { dtype, shape: info.shape, data: file.readFloat32(k) };
    }
    return out;
  }

  it('F16 checkpoint: computes in F32 from the widened values, within F16 precision of the reference', async () => {
    const f16Path = join(tmp, 'clip-f16.safetensors');
    writeSafetensors(f16Path, copyClip('F16'));
    const enc16 = await ClipTextEncoder.load(f16Path, { config, compile: COMPILE });
    // The same values stored F32: any difference would come from the F16 path itself.
    const rounded: Record<string, TensorToWrite> = {};
    const f16File = SafetensorsFile.open(f16Path);
    for (const k of f16File.keys()) {
      const info = f16File.info(k);
      rounded[k] = info.dtype === 'F16' ? { dtype: 'F32', shape: info.shape, data: f16File.readFloat32(k) } : { dtype: info.dtype, shape: info.shape, data: f16File.readBytes(k) };
    }
    const f32Path = join(tmp, 'clip-rounded-f32.safetensors');
    writeSafetensors(f32Path, rounded);
    const enc32 = await ClipTextEncoder.load(f32Path, { config, compile: COMPILE });

    for (const p of PROMPTS) {
      const tokens = windowOf(c, `${p}/tokens`);
      const a = await enc16.encodeTokens([tokens]);
      const b = await enc32.encodeTokens([tokens]);
      expect(measure(a.cond, b.cond, { atol: 0, rtol: 0 }).maxDiff).toBe(0);
      // Weight rounding (2^-11 relative) through two layers and LayerNorm: ~1e-3 of max|e| measured, 3x margin.
      const tol = { atol: 0, rtol: 3e-3 };
      checkTensor(c, `${p}/last_hidden_state`, a.cond, tol);
      checkTensor(c, `${p}/pooled`, a.pooled, tol);
      report[report.length - 2]![0] += ' (F16)';
      report[report.length - 1]![0] += ' (F16)';
    }
  });

  it('a missing key fails at load with the key named', async () => {
    const missing = `${PREFIX}encoder.layers.1.mlp.fc2.bias`;
    const path = join(tmp, 'clip-missing.safetensors');
    writeSafetensors(path, copyClip('F32', missing));
    const err = await ClipTextEncoder.load(path, { config }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelKeyError);
    expect((err as ModelKeyError).key).toBe(missing);
    expect((err as Error).message).toContain(missing);

    const gapPath = join(tmp, 'clip-gap.safetensors');
    const noLayer0 = Object.fromEntries(Object.entries(copyClip('F32')).filter(([k]) => !k.startsWith(`${PREFIX}encoder.layers.0.`)));
    writeSafetensors(gapPath, noLayer0);
    await expect(ClipTextEncoder.load(gapPath, { config })).rejects.toThrow(/encoder layer 0 missing.*encoder\.layers\.0\./);
  });
});
