/**
 * The training folder: captions from .txt or captions.jsonl, clear errors (or counted skips) for empty
 * folders, corrupt images, missing captions and images below the smallest bucket; the resolution law;
 * deterministic batches; and the on-disk latent/text cache that makes later epochs skip the encoders.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeEach, describe, expect, it } from 'vitest';
import { DatasetBatchSource } from '../../runtime/training/batches.js';
import { makeBuckets, parseAspects, parseResolutions, RECIPE_ASPECTS, resolutionWeights } from '../../runtime/training/buckets.js';
import { DatasetError, scanDataset, type DatasetOptions, type ScannedDataset } from '../../runtime/training/dataset.js';
import { demoDatasetSpecs, ensureDemoDataset } from '../../runtime/training/demo-dataset.js';
import { EncodeCache, type DatasetEncoders } from '../../runtime/training/encode-cache.js';

const aspects = parseAspects(RECIPE_ASPECTS);

async function png(path: string, width: number, height: number, shade = 90): Promise<void> {
  const px = Buffer.alloc(width * height * 3);
  for (let i = 0; i < px.length; i++) px[i] = (shade + ((i * 7) % 61)) & 255;
  writeFileSync(path, await sharp(px, { raw: { width, height, channels: 3 } }).png().toBuffer());
}

/** Latents = 8×8 average pools of the first channels; text = a hash-seeded vector. Counts its calls. */
function fakeEncoders(salt = 0): DatasetEncoders & { calls: { image: number; text: number } } {
  const calls = { image: 0, text: 0 };
  return {
    calls,
    async encodeImage(img) {
      calls.image++;
      const [, h, w, c] = img.shape;
      const out = new Float32Array(4 * (h / 8) * (w / 8));
      for (let k = 0; k < 4; k++)
        for (let y = 0; y < h / 8; y++)
          for (let x = 0; x < w / 8; x++) out[(k * (h / 8) + y) * (w / 8) + x] = img.data[((y * 8) * w + x * 8) * c + (k % 3)]! + salt;
      return { data: out, dims: [1, 4, h / 8, w / 8] };
    },
    async encodeText(caption) {
      calls.text++;
      let hsh = 7;
      for (const ch of caption) hsh = (hsh * 31 + ch.charCodeAt(0)) % 1000;
      return { data: Float32Array.from({ length: 77 * 8 }, (_, i) => Math.sin(hsh + i) + salt), dims: [1, 77, 8] };
    },
  };
}

describe('dataset folder', () => {
  let root: string;
  let folder: string;
  const opts = (over: Partial<DatasetOptions> = {}): DatasetOptions => ({
    folder,
    resolutions: [64, 128, 192],
    baseResolution: 128,
    aspects,
    bucketStep: 32,
    onProblem: 'error',
    cacheDir: join(root, 'cache'),
    ...over,
  });

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'resflow-dataset-'));
    folder = join(root, 'images');
    mkdirSync(folder);
  });

  it('refuses a missing or empty folder', async () => {
    await expect(scanDataset(opts({ folder: join(root, 'nope') }))).rejects.toThrow(/does not exist/);
    writeFileSync(join(folder, 'notes.txt'), 'no images here');
    await expect(scanDataset(opts())).rejects.toThrow(/holds no images \(\.png, \.jpg, \.jpeg, \.webp\)/);
  });

  it('reports corrupt images, missing captions and too-small images by name, or skips them with counts', async () => {
    await png(join(folder, 'good.png'), 256, 192);
    writeFileSync(join(folder, 'good.txt'), 'a good picture\n');
    writeFileSync(join(folder, 'garbage.png'), Buffer.from('this is not an image at all'));
    writeFileSync(join(folder, 'garbage.txt'), 'x');
    const whole = await sharp(Buffer.alloc(200 * 200 * 3, 128), { raw: { width: 200, height: 200, channels: 3 } }).png().toBuffer();
    writeFileSync(join(folder, 'truncated.png'), whole.subarray(0, Math.floor(whole.length / 2)));
    writeFileSync(join(folder, 'truncated.txt'), 'x');
    await png(join(folder, 'uncaptioned.png'), 200, 200);
    await png(join(folder, 'tiny.png'), 40, 40);
    writeFileSync(join(folder, 'tiny.txt'), 'too small');

    const err = await scanDataset(opts()).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(DatasetError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/2 image\(s\) cannot be decoded: garbage\.png \(.+\), truncated\.png \(.+\)/);
    expect(msg).toMatch(/1 image\(s\) have no caption \(no same-name \.txt file\): uncaptioned\.png/);
    expect(msg).toMatch(/1 image\(s\) are smaller than the smallest bucket of their aspect ratio: tiny\.png is 40×40, the smallest 1:1 bucket is 64×64/);
    expect(msg).toMatch(/set on_problem to "skip"/);

    const d = await scanDataset(opts({ onProblem: 'skip' }));
    expect(d.items.map((i) => i.caption)).toEqual(['a good picture']);
    expect(d.report).toMatchObject({ images: 5, used: 1, captionSource: 'txt' });
    expect([d.report.corrupt.length, d.report.missingCaption.length, d.report.tooSmall.length]).toEqual([2, 1, 1]);
    // A second scan answers from the per-hash scan cache and agrees.
    expect((await scanDataset(opts({ onProblem: 'skip' }))).report).toEqual(d.report);
  });

  it('fails when skipping leaves nothing to train on', async () => {
    await png(join(folder, 'a.png'), 200, 200);
    await expect(scanDataset(opts({ onProblem: 'skip' }))).rejects.toThrow(/none of its 1 image\(s\) is usable: 1 image\(s\) have no caption/);
  });

  it('reads captions.jsonl (file/text or file_name/caption), counts entries without an image, names a malformed line', async () => {
    await png(join(folder, 'a.png'), 256, 144);
    await png(join(folder, 'b.png'), 192, 256);
    writeFileSync(join(folder, 'b.txt'), 'ignored: the jsonl wins');
    writeFileSync(
      join(folder, 'captions.jsonl'),
      [JSON.stringify({ file: 'a.png', text: 'wide (with parens)' }), JSON.stringify({ file_name: 'sub/b.png', caption: 'tall' }), JSON.stringify({ file: 'gone.png', text: 'orphan' })].join('\n'),
    );
    const d = await scanDataset(opts());
    expect(d.report.captionSource).toBe('jsonl');
    expect(d.items.map((i) => [i.caption, i.aspect.label])).toEqual([
      ['wide (with parens)', '16:9'],
      ['tall', '3:4'],
    ]);
    expect(d.report.orphanCaptions).toEqual(['gone.png']);
    writeFileSync(join(folder, 'captions.jsonl'), '{"file": "a.png", "text": "ok"}\n{broken\n');
    await expect(scanDataset(opts())).rejects.toThrow(/captions\.jsonl:2: not valid JSON/);
  });
});

describe('buckets and the resolution law', () => {
  it('sizes buckets by area and ratio, rounded to the step, and never makes one at the base resolution', () => {
    const b = makeBuckets([512, 1024], parseAspects('1:1, 16:9'), 512, 64);
    expect(b.map((x) => [x.resolution, x.aspect.label, x.width, x.height])).toEqual([
      [1024, '1:1', 1024, 1024],
      [1024, '16:9', 1344, 768],
    ]);
    expect(() => parseAspects('4:0')).toThrow(/not of the form W:H/);
    expect(() => parseResolutions('256, big')).toThrow(/"big" is not a positive integer/);
    expect(resolutionWeights([256, 768, 1024], 512)).toEqual([65536 / 393216, 65536 / 393216, 262144 / 393216]);
  });

  it('draws resolutions with p(x) ∝ |x − s|², flags above-base batches, and draws the same batch for the same step', async () => {
    const root = mkdtempSync(join(tmpdir(), 'resflow-law-'));
    const dir = await ensureDemoDataset(root);
    const d: ScannedDataset = await scanDataset({
      folder: dir,
      resolutions: [64, 128, 192, 256],
      baseResolution: 128,
      aspects,
      bucketStep: 32,
      onProblem: 'error',
      cacheDir: join(root, 'cache'),
    });
    expect(d.items.length).toBe(demoDatasetSpecs().length);
    expect(d.resolutions).toEqual([64, 192, 256]);
    const enc = fakeEncoders();
    const src = new DatasetBatchSource(d, await EncodeCache.create(join(root, 'cache'), enc), { seed: 3, numTimesteps: 1000, toModel: (z) => z });
    const counts = new Map<number, number>();
    const n = 3000;
    for (let k = 0; k < n; k++) {
      const b = await src.batch(k, 2);
      counts.set(b.resolution, (counts.get(b.resolution) ?? 0) + 1);
      expect(b.aboveBase).toBe(b.resolution > 128);
    }
    expect(counts.has(128)).toBe(false);
    // Weights 64², 64², 128² → 1/6, 1/6, 2/3.
    expect(Math.abs(counts.get(64)! / n - 1 / 6)).toBeLessThan(0.03);
    expect(Math.abs(counts.get(192)! / n - 1 / 6)).toBeLessThan(0.03);
    expect(Math.abs(counts.get(256)! / n - 2 / 3)).toBeLessThan(0.03);

    const [a, b] = [await (await src.batch(17, 4)).load(0, 4), await (await src.batch(17, 4)).load(0, 4)];
    expect(a).toEqual(b);
    const step = await src.batch(17, 4);
    const [p, q] = [await step.load(0, 2), await step.load(2, 4)];
    expect(Float32Array.from([...p.noise, ...q.noise])).toEqual(a.noise);
    expect(Float32Array.from([...p.x0, ...q.x0])).toEqual(a.x0);
    expect(Float32Array.from([...p.timesteps, ...q.timesteps])).toEqual(a.timesteps);
    expect(a.timesteps.every((t) => Number.isInteger(t) && t >= 0 && t < 1000)).toBe(true);

    // Offset noise: the same draws plus one constant per (image, channel), also when a step is loaded in parts.
    const offset = new DatasetBatchSource(d, await EncodeCache.create(join(root, 'cache'), enc), { seed: 3, numTimesteps: 1000, toModel: (z) => z, offsetNoise: 0.3 });
    const o = await (await offset.batch(17, 4)).load(0, 4);
    expect(o.x0).toEqual(a.x0);
    expect(o.timesteps).toEqual(a.timesteps);
    const [, c, h, w] = a.dims;
    const shifts: number[] = [];
    for (let ic = 0; ic < 4 * c; ic++) {
      const d0 = o.noise[ic * h * w]! - a.noise[ic * h * w]!;
      for (let k = 0; k < h * w; k++) expect(o.noise[ic * h * w + k]! - a.noise[ic * h * w + k]!).toBeCloseTo(d0, 5);
      shifts.push(d0);
    }
    expect(Math.sqrt(shifts.reduce((s2, v) => s2 + v * v, 0) / shifts.length)).toBeGreaterThan(0.1);
    const oStep = await offset.batch(17, 4);
    expect(Float32Array.from([...(await oStep.load(0, 2)).noise, ...(await oStep.load(2, 4)).noise])).toEqual(o.noise);
  });

  it('caches latents and text on disk: a later epoch or run never calls the encoders; another encoder misses', async () => {
    const root = mkdtempSync(join(tmpdir(), 'resflow-cache-'));
    const dir = await ensureDemoDataset(root);
    const d = await scanDataset({ folder: dir, resolutions: [64, 192], baseResolution: 128, aspects, bucketStep: 32, onProblem: 'error', cacheDir: join(root, 'c') });
    const epoch = async (enc: DatasetEncoders) => {
      const src = new DatasetBatchSource(d, await EncodeCache.create(join(root, 'c'), enc), { seed: 1, numTimesteps: 1000, toModel: (z) => z });
      const out = [];
      for (let k = 0; k < 12; k++) out.push(await (await src.batch(k, 3)).load(0, 3));
      return out;
    };
    const first = fakeEncoders();
    const a = await epoch(first);
    // One probe each for the fingerprint, then real work.
    expect(first.calls.image).toBeGreaterThan(1);
    expect(first.calls.text).toBeGreaterThan(1);
    const again = fakeEncoders();
    const b = await epoch(again);
    expect(again.calls).toEqual({ image: 1, text: 1 });
    expect(b).toEqual(a);
    const other = fakeEncoders(0.5);
    await epoch(other);
    expect(other.calls.image).toBe(first.calls.image);
  });
});
