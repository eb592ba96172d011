/**
 * Every real file we ship against: the eight released ResAdapter variants and the conformance vectors. Each
 * opens, every tensor reads with the size its header promises, and the ResAdapter layouts are pinned so a
 * loader can rely on them.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DTYPE_SIZES, SafetensorsFile } from '../../runtime/safetensors/index.js';
import { shared } from '../shared-data.js';

const resadapterDir = shared('resadapter');
const conformanceDir = shared('conformance');

/** Reads every tensor and checks that the tensors tile the data section exactly, in some order. */
function readAll(f: SafetensorsFile): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  const ranges: Array<[number, number]> = [];
  for (const [name, t] of f.tensors) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    expect(t.byteLength, name).toBe(numel * DTYPE_SIZES[t.dtype]);
    expect(f.readBytes(name).byteLength, name).toBe(t.byteLength);
    const v = f.readFloat32(name);
    expect(v.length, name).toBe(numel);
    out.set(name, v);
    ranges.push([t.offset, t.offset + t.byteLength]);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  let end = f.dataStart;
  for (const [b, e] of ranges) {
    expect(b).toBe(end);
    end = e;
  }
  expect(end).toBe(f.fileSize);
  return out;
}

interface Variant {
  arch: 'sd1.5' | 'sdxl';
  rank: number;
}

const VARIANTS: Record<string, Variant> = {
  'resadapter_v1_sd1.5': { arch: 'sd1.5', rank: 16 },
  'resadapter_v1_sd1.5_extrapolation': { arch: 'sd1.5', rank: 16 },
  'resadapter_v1_sd1.5_interpolation': { arch: 'sd1.5', rank: 16 },
  'resadapter_v2_sd1.5': { arch: 'sd1.5', rank: 16 },
  resadapter_v1_sdxl: { arch: 'sdxl', rank: 16 },
  resadapter_v1_sdxl_extrapolation: { arch: 'sdxl', rank: 32 },
  resadapter_v1_sdxl_interpolation: { arch: 'sdxl', rank: 16 },
  resadapter_v2_sdxl: { arch: 'sdxl', rank: 16 },
};

/** The resampling convs that carry LoRA, with their channel counts. */
const LORA_MODULES = {
  'sd1.5': { down_blocks_0_downsamplers_0: 320, down_blocks_1_downsamplers_0: 640, down_blocks_2_downsamplers_0: 1280, up_blocks_0_upsamplers_0: 1280, up_blocks_1_upsamplers_0: 1280, up_blocks_2_upsamplers_0: 640 },
  sdxl: { down_blocks_0_downsamplers_0: 320, down_blocks_1_downsamplers_0: 640, up_blocks_0_upsamplers_0: 1280, up_blocks_1_upsamplers_0: 640 },
};

/** GroupNorm tensors: count, and how many have each channel count (weight and bias alike). */
const NORMS = {
  'sd1.5': { count: 88, channels: { 320: 16, 640: 18, 960: 4, 1280: 36, 1920: 4, 2560: 10 } },
  sdxl: { count: 68, channels: { 320: 16, 640: 18, 960: 4, 1280: 22, 1920: 4, 2560: 4 } },
};

describe('released ResAdapter files', () => {
  it('has exactly the eight released variants', () => {
    expect(readdirSync(resadapterDir).sort()).toEqual(Object.keys(VARIANTS).sort());
  });

  for (const [name, v] of Object.entries(VARIANTS)) {
    describe(name, () => {
      const dir = path.join(resadapterDir, name);

      it('LoRA file: lora_down/lora_up F16 pairs on every resampling conv, alpha 8.0', () => {
        const f = SafetensorsFile.open(path.join(dir, 'pytorch_lora_weights.safetensors'));
        const modules = LORA_MODULES[v.arch];
        const n = Object.keys(modules).length;
        expect(f.keys()).toHaveLength(3 * n); // 18 for SD1.5, 12 for SDXL
        expect(f.metadata).toEqual({});
        const data = readAll(f);
        for (const [mod, ch] of Object.entries(modules)) {
          const base = `lora_unet_${mod}_conv`;
          expect(f.info(`${base}.lora_down.weight`)).toMatchObject({ dtype: 'F16', shape: [v.rank, ch, 3, 3] });
          expect(f.info(`${base}.lora_up.weight`)).toMatchObject({ dtype: 'F16', shape: [ch, v.rank, 1, 1] });
          expect(f.info(`${base}.alpha`)).toMatchObject({ dtype: 'F16', shape: [] });
          expect(Array.from(data.get(`${base}.alpha`)!)).toEqual([8]);
          for (const part of ['lora_down', 'lora_up']) {
            const w = data.get(`${base}.${part}.weight`)!;
            expect(w.every(Number.isFinite), `${base}.${part}`).toBe(true);
            expect(w.some((x) => x !== 0), `${base}.${part}`).toBe(true);
          }
        }
      });

      it('norm file: F32 GroupNorm weight/bias pairs of the ResNet blocks', () => {
        const f = SafetensorsFile.open(path.join(dir, 'diffusion_pytorch_model.safetensors'));
        const spec = NORMS[v.arch];
        expect(f.keys()).toHaveLength(spec.count);
        const data = readAll(f);
        const hist: Record<number, number> = {};
        for (const [key, t] of f.tensors) {
          expect(key).toMatch(/^(down_blocks\.\d|mid_block|up_blocks\.\d)\.resnets\.\d\.norm[12]\.(weight|bias)$/);
          expect(t.dtype).toBe('F32');
          expect(t.shape).toHaveLength(1);
          hist[t.shape[0]!] = (hist[t.shape[0]!] ?? 0) + 1;
          const pair = key.endsWith('.weight') ? key.replace(/weight$/, 'bias') : key.replace(/bias$/, 'weight');
          expect(f.info(pair).shape).toEqual(t.shape);
          expect(data.get(key)!.every(Number.isFinite)).toBe(true);
        }
        expect(hist).toEqual(spec.channels);
      });
    });
  }
});

function safetensorsUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((p) => p.endsWith('.safetensors'))
    .sort();
}

describe('conformance vectors', () => {
  const index = JSON.parse(readFileSync(path.join(conformanceDir, 'index.json'), 'utf8')) as {
    files: Record<string, { bytes: number; sha256: string }>;
  };
  const files = safetensorsUnder(conformanceDir);

  it('index.json lists exactly the files present', () => {
    expect(files.length).toBeGreaterThan(0);
    expect(files).toEqual(Object.keys(index.files).sort());
  });

  it.each(files)('%s opens, every tensor reads, sizes and checksum agree', (rel) => {
    const p = path.join(conformanceDir, rel);
    const entry = index.files[rel]!;
    expect(statSync(p).size).toBe(entry.bytes);
    expect(createHash('sha256').update(readFileSync(p)).digest('hex')).toBe(entry.sha256);
    const f = SafetensorsFile.open(p);
    expect(f.tensors.size).toBeGreaterThan(0);
    readAll(f);
  });
});
