import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { keyShapesOf, sd15KeyShapes, sdxlKeyShapes } from '../../runtime/adapters/arch-tables.js';
import {
  ResAdapterError,
  detectResAdapterShape,
  loadResAdapter,
  resolveResAdapterFiles,
} from '../../runtime/adapters/resadapter.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import { shared } from './helpers.js';

const variants = readdirSync(shared('resadapter')).sort();

describe('released ResAdapter variants on full-size tables', () => {
  const sd15 = sd15KeyShapes();
  const sdxl = sdxlKeyShapes();

  it('all 8 variants are present', () => {
    expect(variants).toHaveLength(8);
  });

  for (const v of variants) {
    it(`${v}: every tensor maps, nothing left over`, () => {
      const isXL = v.includes('sdxl');
      const dir = shared('resadapter', v);
      const lora = SafetensorsFile.open(path.join(dir, 'pytorch_lora_weights.safetensors'));
      const norm = SafetensorsFile.open(path.join(dir, 'diffusion_pytorch_model.safetensors'));
      expect(lora.keys()).toHaveLength(isXL ? 12 : 18);
      expect(norm.keys()).toHaveLength(isXL ? 68 : 88);

      const a = loadResAdapter(dir, isXL ? sdxl : sd15);
      expect(a.family).toBe(isXL ? 'sdxl' : 'sd15');
      expect(a.warnings).toEqual([]);
      // 3 tensors (down, up, alpha) per patch: every LoRA tensor is used.
      expect(a.patches).toHaveLength(lora.keys().length / 3);
      expect(a.norms.size).toBe(norm.keys().length);
      expect(a.rank).toBe(v === 'resadapter_v1_sdxl_extrapolation' ? 32 : 16);
      expect(a.alpha).toBe(8);
      const table = isXL ? sdxl : sd15;
      for (const p of a.patches) {
        expect(p.target).toMatch(/\.(0\.op|[12]\.conv)\.weight$/);
        expect(table.get(p.target)![0]).toBe(p.upShape[0]);
      }
      const resnetNorms = [...table.keys()].filter((k) => /\.(in|out)_layers\.0\./.test(k));
      expect(new Set(a.norms.keys())).toEqual(new Set(resnetNorms));
      for (const [k, t] of a.norms) expect(t.length).toBe(table.get(k)![0]);
    });
  }

  it('an SDXL adapter is refused on an SD1.5 model, and the reverse', () => {
    const xl = shared('resadapter', 'resadapter_v2_sdxl');
    expect(() => loadResAdapter(xl, sd15)).toThrow(ResAdapterError);
    expect(() => loadResAdapter(xl, sd15)).toThrow(/made for SDXL \(3 UNet levels.*model is SD1\.5 \(4 UNet levels/);
    expect(() => loadResAdapter(shared('resadapter', 'resadapter_v2_sd1.5'), sdxl)).toThrow(/made for SD1\.5.*model is SDXL/);
    // Refused from the LoRA alone as well (interpolation variants may come without norms).
    expect(() => loadResAdapter([path.join(xl, 'pytorch_lora_weights.safetensors')], sd15)).toThrow(/SDXL/);
  });

  it('detects the family from names and shapes', () => {
    const open = (v: string, f: string) => SafetensorsFile.open(shared('resadapter', v, f));
    expect(detectResAdapterShape(open('resadapter_v1_sdxl', 'pytorch_lora_weights.safetensors'))).toEqual({
      family: 'sdxl',
      levels: 3,
      baseChannels: 320,
    });
    expect(
      detectResAdapterShape(
        open('resadapter_v1_sd1.5', 'pytorch_lora_weights.safetensors'),
        open('resadapter_v1_sd1.5', 'diffusion_pytorch_model.safetensors'),
      ),
    ).toEqual({ family: 'sd15', levels: 4, baseChannels: 320 });
  });
});

describe('ResAdapter files', () => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'resflow-resadapter-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const src = shared('conformance/models/resadapter-a');
  const tiny = () => keyShapesOf(SafetensorsFile.open(shared('conformance/models/tiny-sd15-a.safetensors')));

  it('accepts the folder, the two files in any order, and the old file names', () => {
    const byDir = loadResAdapter(src, tiny());
    expect(byDir.patches).toHaveLength(2);
    expect(byDir.norms.size).toBe(32);
    const files = [path.join(src, 'diffusion_pytorch_model.safetensors'), path.join(src, 'pytorch_lora_weights.safetensors')];
    expect(resolveResAdapterFiles(files)).toEqual({ lora: files[1], norm: files[0] });

    const oldDir = mkdtempSync(path.join(tmp, 'old-'));
    copyFileSync(files[1]!, path.join(oldDir, 'resolution_lora.safetensors'));
    copyFileSync(files[0]!, path.join(oldDir, 'resolution_normalization.safetensors'));
    const a = loadResAdapter(oldDir, tiny());
    expect(a.norms.size).toBe(32);
    expect(a.warnings).toEqual([]);

    // Unfamiliar names are told apart by content.
    const odd = mkdtempSync(path.join(tmp, 'odd-'));
    copyFileSync(files[1]!, path.join(odd, 'a.safetensors'));
    copyFileSync(files[0]!, path.join(odd, 'b.safetensors'));
    const r = resolveResAdapterFiles([path.join(odd, 'b.safetensors'), path.join(odd, 'a.safetensors')]);
    expect(r).toEqual({ lora: path.join(odd, 'a.safetensors'), norm: path.join(odd, 'b.safetensors') });
  });

  it('a missing norm file is tolerated with a warning; a missing LoRA is an error', () => {
    const onlyLora = mkdtempSync(path.join(tmp, 'lora-only-'));
    copyFileSync(path.join(src, 'pytorch_lora_weights.safetensors'), path.join(onlyLora, 'pytorch_lora_weights.safetensors'));
    const a = loadResAdapter(onlyLora, tiny());
    expect(a.norms.size).toBe(0);
    expect(a.patches).toHaveLength(2);
    expect(a.warnings).toHaveLength(1);
    expect(a.warnings[0]).toMatch(/no normalization file/);

    const onlyNorm = mkdtempSync(path.join(tmp, 'norm-only-'));
    copyFileSync(path.join(src, 'diffusion_pytorch_model.safetensors'), path.join(onlyNorm, 'diffusion_pytorch_model.safetensors'));
    expect(() => loadResAdapter(onlyNorm, tiny())).toThrow(/no ResAdapter LoRA file/);
  });

  it('the tiny SDXL adapter is refused on the tiny SD1.5 model', () => {
    expect(() => loadResAdapter(shared('conformance-sdxl/models/resadapter-sdxl-a'), tiny())).toThrow(
      /made for SDXL \(3 UNet levels, width 32\) but the model is a 2-level UNet/,
    );
  });
});
