import { mkdtempSync, readFileSync, rmSync, truncateSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crop, tiledScale, Vae, type ImageBatch, type Nchw } from '../../runtime/models/vae/index.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../../runtime/safetensors/index.js';
import { shared } from '../shared-data.js';

const CASE_DIR = shared('conformance', 'vae');
const CKPT = shared('conformance', 'models', 'tiny-sd15-a.safetensors');

type Shape4 = [number, number, number, number];

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

function meanDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}

/** Deterministic pseudo-random values in [-1, 1) (mulberry32). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}

function latent(shape: Shape4, seed: number): Nchw {
  const r = rng(seed);
  return { data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r() * 1.5), shape };
}

function image(shape: Shape4, seed: number): ImageBatch {
  const r = rng(seed);
  const [, H, W, C] = shape;
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  // Smooth content with a little noise: closer to real photos than white noise.
  for (let i = 0; i < data.length; i++) {
    const c = i % C;
    const x = Math.floor(i / C) % W;
    const y = Math.floor(i / (C * W)) % H;
    data[i] = Math.min(1, Math.max(0, 0.5 + 0.35 * Math.sin(x * 0.21 + c) * Math.cos(y * 0.17 - c) + 0.05 * r()));
  }
  return { data, shape };
}

const tmp = mkdtempSync(join(tmpdir(), 'resflow-vae-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The checkpoint's first_stage_model.* tensors under their standalone (unprefixed) names. */
function standaloneTensors(file: SafetensorsFile, dtype: 'F32' | 'F16', skip = new Set<string>()): Record<string, TensorToWrite> {
  const out: Record<string, TensorToWrite> = {};
  for (const k of file.keys()) {
    if (!k.startsWith('first_stage_model.')) continue;
    const name = k.slice('first_stage_model.'.length);
    if (skip.has(name)) continue;
    out[name] = { dtype, shape: file.info(k).shape, data: file.readFloat32(k) };
  }
  return out;
}

describe('VAE conformance (tiny-sd15-a, ComfyUI reference)', () => {
  const json = JSON.parse(readFileSync(join(CASE_DIR, 'case.json'), 'utf8'));
  let inputs: SafetensorsFile;
  let expected: SafetensorsFile;
  let vae: Vae;

  beforeAll(async () => {
    inputs = SafetensorsFile.open(join(CASE_DIR, 'inputs.safetensors'));
    expected = SafetensorsFile.open(join(CASE_DIR, 'expected.safetensors'));
    vae = await Vae.load(CKPT);
  });

  const input = (name: string) => ({ data: inputs.readFloat32(name), shape: inputs.info(name).shape as Shape4 });

  async function produce(name: string): Promise<Float32Array> {
    const dec = /^(decode\d+)\/(raw|image|intermediate\/(.+))$/.exec(name);
    if (dec) {
      const z = input(`${dec[1]}/z`);
      if (dec[2] === 'raw') return (await vae.decodeRaw(z)).data;
      if (dec[2] === 'image') return (await vae.decode(z)).data;
      const t = (await vae.decodeIntermediates(z))[dec[3]!];
      if (!t) throw new Error(`no decoder intermediate "${dec[3]}"`);
      return t.data;
    }
    const enc = /^(encode\d+)\/(moments|mean|logvar|latent)$/.exec(name);
    if (enc) {
      const img = input(`${enc[1]}/image`);
      if (enc[2] === 'latent') return (await vae.encode(img)).data;
      const p = await vae.encodeMoments(img);
      return (enc[2] === 'moments' ? p.moments : enc[2] === 'mean' ? p.mean : p.logvar!).data;
    }
    throw new Error(`no producer for expected tensor "${name}"`);
  }

  it('infers the tiny architecture from the checkpoint', () => {
    const dd = json.models.checkpoint.vae_ddconfig;
    expect(vae.config).toMatchObject({ ch: dd.ch, chMult: dd.ch_mult, numResBlocks: dd.num_res_blocks, zChannels: dd.z_channels, doubleZ: dd.double_z });
    expect(vae.config.embedDim).toBe(json.models.checkpoint.vae_embed_dim);
    expect(vae.downscale).toBe(json.params.downscale_factor);
    expect(vae.scaleFactor).toBe(json.params.scale_factor);
    expect(vae.weights.prefix).toBe('first_stage_model.');
  });

  it('matches every expected tensor within tolerance', async () => {
    const names = Object.keys(json.outputs.tensors);
    const rows: string[] = [];
    const failed: string[] = [];
    for (const name of names) {
      const tol = json.outputs.tensors[name].tolerance ?? json.tolerance.default;
      const e = expected.readFloat32(name);
      const a = await produce(name);
      expect(a.length, name).toBe(e.length);
      let maxE = 0;
      for (const v of e) maxE = Math.max(maxE, Math.abs(v));
      const err = maxDiff(a, e);
      const limit = tol.atol + tol.rtol * maxE;
      rows.push(`${name.padEnd(44)} max|a-e| ${err.toExponential(2)}  limit ${limit.toExponential(2)}`);
      if (!(err <= limit)) failed.push(name);
    }
    console.log(rows.join('\n'));
    expect(failed).toEqual([]);
    expect(rows.length).toBe(names.length);
  });

  it('decodes odd latent sizes and batches', async () => {
    const z = latent([1, 4, 6, 10], 1);
    const img = await vae.decode(z);
    expect(img.shape).toEqual([1, 12, 20, 3]);
    expect(img.data.every((v) => v >= 0 && v <= 1)).toBe(true);
    const a = latent([1, 4, 5, 7], 2);
    const b = latent([1, 4, 5, 7], 3);
    const both = await vae.decodeRaw({ data: Float32Array.from([...a.data, ...b.data]), shape: [2, 4, 5, 7] });
    expect(both.shape).toEqual([2, 3, 10, 14]);
    const half = both.data.length / 2;
    expect(maxDiff(both.data.subarray(0, half), (await vae.decodeRaw(a)).data)).toBeLessThan(1e-5);
    expect(maxDiff(both.data.subarray(half), (await vae.decodeRaw(b)).data)).toBeLessThan(1e-5);
  });

  it('encodes 48x80 images and center-crops sizes that are not a multiple of the downscale', async () => {
    const img = image([1, 48, 80, 3], 4);
    const lat = await vae.encode(img);
    expect(lat.shape).toEqual([1, 4, 24, 40]);
    // 49x83 -> ComfyUI crops to 48x82 starting at (0, 0): (49 % 2) // 2 = 0, (83 % 2) // 2 = 0.
    const odd = image([1, 49, 83, 3], 5);
    const cropped = new Float32Array(48 * 82 * 3);
    for (let y = 0; y < 48; y++) cropped.set(odd.data.subarray(y * 83 * 3, y * 83 * 3 + 82 * 3), y * 82 * 3);
    const a = await vae.encode(odd);
    expect(a.shape).toEqual([1, 4, 24, 41]);
    expect(maxDiff(a.data, (await vae.encode({ data: cropped, shape: [1, 48, 82, 3] })).data)).toBe(0);
    // RGBA input: alpha is ignored, as ComfyUI's VAEEncode node does.
    const rgba = new Float32Array(48 * 80 * 4);
    for (let i = 0; i < 48 * 80; i++) rgba.set([...img.data.subarray(i * 3, i * 3 + 3), 0.25], i * 4);
    expect(maxDiff((await vae.encode({ data: rgba, shape: [1, 48, 80, 4] })).data, lat.data)).toBe(0);
  });

  it('tiled decode: one tile equals untiled; small tiles stay close', async () => {
    const z = latent([2, 4, 24, 32], 6);
    const full = await vae.decode(z);
    const single = await vae.decodeTiled(z, { tileSize: 512, overlap: 64 });
    expect(single.shape).toEqual(full.shape);
    // Three identical passes averaged in float32: equal up to the rounding of (a + a + a) / 3.
    expect(maxDiff(single.data, full.data)).toBeLessThan(1e-6);
    expect(maxDiff((await vae.decodeTiled(z, { passes: 1 })).data, full.data)).toBe(0);
    // Tiles of 32x32 px (16 latent) with 8 px overlap: every pass splits both axes.
    const tiled = await vae.decodeTiled(z, { tileSize: 32, overlap: 8 });
    expect(tiled.shape).toEqual([2, 48, 64, 3]);
    const mean = meanDiff(tiled.data, full.data);
    console.log(`tiled decode vs untiled: mean |d| ${mean.toFixed(4)}, max ${maxDiff(tiled.data, full.data).toFixed(4)}`);
    // The tiny random VAE's GroupNorm/attention see only a tile, so tiles differ from the whole; the blend
    // must still land near the untiled image (a naive crop differs by ~0.1 in raw units everywhere).
    expect(mean).toBeLessThan(0.08);
    const onePass = await vae.decodeTiled(z, { tileSize: 32, overlap: 8, passes: 1 });
    expect(meanDiff(onePass.data, full.data)).toBeLessThan(0.1);
  });

  it('tiled encode: one tile equals untiled; small tiles stay close', async () => {
    const img = image([1, 48, 80, 3], 7);
    const full = await vae.encode(img);
    expect(maxDiff((await vae.encodeTiled(img)).data, full.data)).toBeLessThan(1e-6);
    expect(maxDiff((await vae.encodeTiled(img, { passes: 1 })).data, full.data)).toBe(0);
    const tiled = await vae.encodeTiled(img, { tileSize: 32, overlap: 8 });
    expect(tiled.shape).toEqual(full.shape);
    const mean = meanDiff(tiled.data, full.data);
    console.log(`tiled encode vs untiled: mean |d| ${mean.toFixed(4)}, max ${maxDiff(tiled.data, full.data).toFixed(4)}`);
    expect(mean).toBeLessThan(0.08);
  });

  it('loads a standalone VAE file (no prefix), F32 identical and F16 close', async () => {
    const ckpt = SafetensorsFile.open(CKPT);
    const z = input('decode1/z');
    const ref = await vae.decodeRaw(z);
    const refEnc = await vae.encode(input('encode1/image'));
    const p32 = join(tmp, 'vae-f32.safetensors');
    writeSafetensors(p32, standaloneTensors(ckpt, 'F32'));
    const v32 = await Vae.load(p32);
    expect(v32.weights.prefix).toBe('');
    expect(v32.config).toEqual(vae.config);
    expect(maxDiff((await v32.decodeRaw(z)).data, ref.data)).toBe(0);
    expect(maxDiff((await v32.encode(input('encode1/image'))).data, refEnc.data)).toBe(0);
    const p16 = join(tmp, 'vae-f16.safetensors');
    writeSafetensors(p16, standaloneTensors(ckpt, 'F16'));
    const v16 = await Vae.load(p16);
    expect(maxDiff((await v16.decodeRaw(z)).data, ref.data)).toBeLessThan(2e-2);
  });

  it('names the missing, mis-shaped or truncated tensor', async () => {
    const ckpt = SafetensorsFile.open(CKPT);
    const missing = join(tmp, 'missing.safetensors');
    writeSafetensors(missing, standaloneTensors(ckpt, 'F32', new Set(['decoder.mid.block_1.conv1.weight'])));
    await expect(Vae.load(missing)).rejects.toThrow(/decoder\.mid\.block_1\.conv1\.weight/);
    const noBias = join(tmp, 'missing-enc.safetensors');
    writeSafetensors(noBias, standaloneTensors(ckpt, 'F32', new Set(['encoder.down.0.downsample.conv.bias'])));
    await expect(Vae.load(noBias)).rejects.toThrow(/encoder\.down\.0\.downsample\.conv\.bias/);
    const bad = standaloneTensors(ckpt, 'F32');
    bad['decoder.up.0.block.0.conv2.weight'] = { dtype: 'F32', shape: [32, 32, 1, 1], data: new Float32Array(32 * 32) };
    const badPath = join(tmp, 'bad-shape.safetensors');
    writeSafetensors(badPath, bad);
    await expect(Vae.load(badPath)).rejects.toThrow(/decoder\.up\.0\.block\.0\.conv2\.weight/);
    const cut = join(tmp, 'truncated.safetensors');
    writeSafetensors(cut, standaloneTensors(ckpt, 'F32'));
    truncateSync(cut, statSync(cut).size - 100);
    const lastKey = Object.keys(standaloneTensors(ckpt, 'F32')).at(-1)!;
    await expect(Vae.load(cut)).rejects.toThrow(lastKey);
    const empty = join(tmp, 'empty.safetensors');
    writeSafetensors(empty, { 'model.diffusion_model.out.2.bias': { dtype: 'F32', shape: [4], data: new Float32Array(4) } });
    await expect(Vae.load(empty)).rejects.toThrow(/decoder\.conv_in\.weight/);
  });
});

interface SynthConfig {
  ch: number;
  chMult: number[];
  numRes: number;
  z: number;
  attnLevels: number[];
  linearAttn: boolean;
}

/** A random AutoencoderKL state dict in LDM layout for an arbitrary ddconfig (what a real SD VAE file holds). */
function synthVae(cfg: SynthConfig, seed: number): Record<string, TensorToWrite> {
  const r = rng(seed);
  const t: Record<string, TensorToWrite> = {};
  const put = (name: string, shape: number[], scale: number, offset = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    t[name] = { dtype: 'F32', shape, data: Float32Array.from({ length: n }, () => offset + scale * r()) };
  };
  const conv = (name: string, o: number, i: number, k: number) => {
    put(`${name}.weight`, [o, i, k, k], Math.sqrt(3 / (i * k * k)));
    put(`${name}.bias`, [o], 0.05);
  };
  const norm = (name: string, c: number) => {
    put(`${name}.weight`, [c], 0.1, 1);
    put(`${name}.bias`, [c], 0.05);
  };
  const res = (name: string, i: number, o: number) => {
    norm(`${name}.norm1`, i);
    conv(`${name}.conv1`, o, i, 3);
    norm(`${name}.norm2`, o);
    conv(`${name}.conv2`, o, o, 3);
    if (i !== o) conv(`${name}.nin_shortcut`, o, i, 1);
  };
  const attn = (name: string, c: number) => {
    norm(`${name}.norm`, c);
    for (const p of ['q', 'k', 'v', 'proj_out']) {
      put(`${name}.${p}.weight`, cfg.linearAttn ? [c, c] : [c, c, 1, 1], Math.sqrt(3 / c));
      put(`${name}.${p}.bias`, [c], 0.05);
    }
  };
  const L = cfg.chMult.length;
  const chs = cfg.chMult.map((m) => m * cfg.ch);
  conv('encoder.conv_in', cfg.ch, 3, 3);
  let c = cfg.ch;
  for (let l = 0; l < L; l++) {
    for (let b = 0; b < cfg.numRes; b++) {
      res(`encoder.down.${l}.block.${b}`, c, chs[l]!);
      c = chs[l]!;
      if (cfg.attnLevels.includes(l)) attn(`encoder.down.${l}.attn.${b}`, c);
    }
    if (l < L - 1) conv(`encoder.down.${l}.downsample.conv`, c, c, 3);
  }
  for (const m of ['encoder', 'decoder']) {
    res(`${m}.mid.block_1`, c, c);
    attn(`${m}.mid.attn_1`, c);
    res(`${m}.mid.block_2`, c, c);
  }
  norm('encoder.norm_out', c);
  conv('encoder.conv_out', 2 * cfg.z, c, 3);
  conv('quant_conv', 2 * cfg.z, 2 * cfg.z, 1);
  conv('post_quant_conv', cfg.z, cfg.z, 1);
  conv('decoder.conv_in', c, cfg.z, 3);
  for (let l = L - 1; l >= 0; l--) {
    for (let b = 0; b <= cfg.numRes; b++) {
      res(`decoder.up.${l}.block.${b}`, c, chs[l]!);
      c = chs[l]!;
      if (cfg.attnLevels.includes(l)) attn(`decoder.up.${l}.attn.${b}`, c);
    }
    if (l > 0) conv(`decoder.up.${l}.upsample.conv`, c, c, 3);
  }
  norm('decoder.norm_out', c);
  conv('decoder.conv_out', 3, c, 3);
  return t;
}

describe('VAE architecture inference on an SD-shaped VAE (4 levels, 2 res blocks, level attention)', () => {
  const base: SynthConfig = { ch: 32, chMult: [1, 1, 2, 2], numRes: 2, z: 4, attnLevels: [3], linearAttn: false };
  let conv4d: Vae;
  let linear: Vae;

  beforeAll(async () => {
    const p1 = join(tmp, 'sd-shaped.safetensors');
    writeSafetensors(p1, synthVae(base, 11));
    const p2 = join(tmp, 'sd-shaped-linear-attn.safetensors');
    writeSafetensors(p2, synthVae({ ...base, linearAttn: true }, 11));
    conv4d = await Vae.load(p1, { scaleFactor: 0.13025 });
    linear = await Vae.load(p2);
  });

  it('reads ch, ch_mult, res blocks, attention levels and downscale from keys and shapes', () => {
    expect(conv4d.config).toMatchObject({ ch: 32, chMult: [1, 1, 2, 2], numResBlocks: 2, zChannels: 4, embedDim: 4, attnLevels: [3], midAttention: true, downscale: 8 });
    expect(conv4d.scaleFactor).toBe(0.13025);
    expect(linear.config).toEqual(conv4d.config);
  });

  it('decodes a 6x10 latent to 48x80 and encodes it back to 6x10; 1x1-conv and linear attention weights agree', async () => {
    const z = latent([1, 4, 6, 10], 12);
    const a = await conv4d.decodeRaw(z);
    expect(a.shape).toEqual([1, 3, 48, 80]);
    expect(a.data.every(Number.isFinite)).toBe(true);
    expect(maxDiff((await linear.decodeRaw(z)).data, a.data)).toBeLessThan(1e-5);
    const img = image([1, 48, 80, 3], 13);
    const lat = await conv4d.encode(img);
    expect(lat.shape).toEqual([1, 4, 6, 10]);
    expect(maxDiff((await linear.encode(img)).data, lat.data)).toBeLessThan(1e-5);
  });
});

describe('tiledScale blending', () => {
  // A purely local function (nearest x2 upscale, affine) must come out of any tiling exactly as if run whole.
  const up = async (x: Nchw): Promise<Nchw> => {
    const [b, c, h, w] = x.shape;
    const o = new Float32Array(b * c * h * w * 4);
    for (let i = 0; i < b * c; i++) {
      for (let y = 0; y < 2 * h; y++) {
        for (let xx = 0; xx < 2 * w; xx++) o[(i * 2 * h + y) * 2 * w + xx] = x.data[(i * h + (y >> 1)) * w + (xx >> 1)]! * 2 + 1;
      }
    }
    return { data: o, shape: [b, c, 2 * h, 2 * w] };
  };

  it('reproduces a local function exactly for any tile grid', async () => {
    const x = latent([2, 3, 13, 17], 21);
    const whole = await up(x);
    for (const [tileH, tileW, overlap] of [[5, 7, 2], [8, 8, 3], [13, 4, 1], [4, 40, 3]] as const) {
      const t = await tiledScale(x, up, { tileH, tileW, overlap, scale: 2, outChannels: 3 });
      expect(t.shape).toEqual(whole.shape);
      expect(maxDiff(t.data, whole.data)).toBeLessThan(1e-5);
    }
    expect(crop(x, 1, 2, 3, 4, 5).shape).toEqual([1, 3, 4, 5]);
  });
});
