/**
 * VAEDecode like ComfyUI: whole unless the decode cannot fit, then in tiles and saying so. Runs the demo
 * VAE (ch 32, 4 levels, downscale 8) so a decode above 1536² output pixels takes seconds, not minutes.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { vaeNodes } from '../../nodes/core/sampler-nodes.js';
import type { NodeContext } from '../../nodes/spec.js';
import { DEMO_ARCH } from '../../runtime/models/synthetic/demo.js';
import { writeSyntheticCheckpoint } from '../../runtime/models/synthetic/generate.js';
import { vaeKeyShapes } from '../../runtime/models/synthetic/tables.js';
import { decodeWholeOrTiled, estimateDecodeBytes, planDecode, Vae, type ImageBatch, type Nchw } from '../../runtime/models/vae/index.js';

let vae: Vae;
beforeAll(async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'resflow-vae-decode-')), 'demo-vae.safetensors');
  writeSyntheticCheckpoint(file, vaeKeyShapes(DEMO_ARCH.vae, ''), { seed: 11 });
  vae = await Vae.load(file, { compile: { threads: 2 } });
});

function latent(h: number, w: number): Nchw {
  const n = 4 * h * w;
  return { data: Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 1.3 + Math.cos(i * 0.011)), shape: [1, 4, h, w] };
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function ctx(logs: unknown[][]): NodeContext {
  return { nodeId: '8', promptId: 'p', signal: new AbortController().signal, progress: () => {}, log: (...a) => logs.push(a) };
}

describe('the decode plan', () => {
  it('grows with the image and the batch, from the VAE\'s own widths', () => {
    const c = vae.config;
    const one = estimateDecodeBytes(c, [1, 4, 64, 64]);
    expect(estimateDecodeBytes(c, [1, 4, 128, 128])).toBeGreaterThan(3.9 * one);
    expect(estimateDecodeBytes(c, [2, 4, 64, 64])).toBe(2 * one);
    // Widest full-resolution activation of the demo VAE: 512² pixels × 32 channels × 4 bytes, 8 of them live.
    expect(one).toBeGreaterThanOrEqual(8 * 512 * 512 * 32 * 4);
    expect(one).toBeLessThan(12 * 512 * 512 * 32 * 4);
  });

  it('is whole when the estimate fits and tiled with the numbers when it does not', () => {
    const whole = planDecode(vae.config, [1, 4, 194, 193], 64 * 2 ** 30);
    expect(whole.mode).toBe('whole');
    expect(whole.reason).toBeUndefined();
    const tiled = planDecode(vae.config, [1, 4, 194, 193], 2 ** 30);
    expect(tiled.mode).toBe('tiled');
    expect(tiled.reason).toMatch(/decoding 1544×1552 in tiles: a whole decode needs about \d+\.\d GiB, 1\.0 GiB is available/);
  });
});

describe('VAEDecode', () => {
  it('decodes a 1544×1552 image (above 1536² pixels) whole, matching a whole decode', async () => {
    const z = latent(194, 193);
    const node = vaeNodes().find((n) => n.name === 'VAEDecode')!;
    const logs: unknown[][] = [];
    const out = await node.execute({ samples: { samples: z }, vae }, ctx(logs));
    expect(Array.isArray(out)).toBe(true);
    const image = (out as unknown[])[0] as ImageBatch;
    expect(image.shape).toEqual([1, 1552, 1544, 3]);
    expect(1552 * 1544).toBeGreaterThan(1536 * 1536);
    expect(logs).toEqual([]);
    const reference = await vae.decode(z);
    expect(maxDiff(image.data, reference.data)).toBeLessThanOrEqual(1e-5);
    // A real picture, not a constant: the check above would pass for two blank images too.
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of image.data) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
    expect(hi - lo).toBeGreaterThan(0.1);
  }, 240_000);

  it('falls back to ComfyUI\'s tiles when the whole decode cannot fit, and says so', async () => {
    const z = latent(40, 72);
    const r = await decodeWholeOrTiled(vae, z, 1024);
    expect(r.plan.mode).toBe('tiled');
    expect(r.plan.reason).toMatch(/decoding 576×320 in tiles/);
    const tiled = await vae.decodeTiled(z);
    expect(maxDiff(r.image.data, tiled.data)).toBe(0);
    const whole = await vae.decode(z);
    const d = maxDiff(r.image.data, whole.data);
    expect(d).toBeGreaterThan(0); // it really tiled
    expect(d).toBeLessThan(0.5);
    const node = vaeNodes().find((n) => n.name === 'VAEDecode')!;
    const small = (await node.execute({ samples: { samples: latent(8, 8) }, vae }, ctx([]))) as unknown[];
    expect((small[0] as ImageBatch).shape).toEqual([1, 64, 64, 3]);
  }, 240_000);
});

