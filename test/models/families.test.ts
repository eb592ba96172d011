/**
 * Model families are described once: one folder each under runtime/models/families/, one registry that lists
 * them and detects a checkpoint's family from its keys, and descriptors whose facts agree with real files.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { familyNodes, type LoadedFamilyId } from '../../nodes/core/families.js';
import { detectFamily } from '../../runtime/models/checkpoint.js';
import { detectModelFamily, MODEL_FAMILIES, modelFamily } from '../../runtime/models/families/registry.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import { repoRoot, shared } from '../shared-data.js';

const FILES = {
  sd1: shared('conformance', 'models', 'tiny-sd15-a.safetensors'),
  sdxl: shared('conformance-sdxl', 'models', 'tiny-sdxl-a.safetensors'),
  'sdxl-refiner': shared('conformance-sdxl-next', 'models', 'tiny-sdxl-refiner-a.safetensors'),
} as const;

const FAMILIES_DIR = join(repoRoot, 'runtime', 'models', 'families');

describe('model families', () => {
  it('the registry lists SD1.x, SD2.x, SDXL and the refiner, each in its own folder', () => {
    expect(MODEL_FAMILIES.map((f) => f.id).sort()).toEqual(['sd1', 'sd2', 'sdxl', 'sdxl-refiner']);
    const registry = readFileSync(join(FAMILIES_DIR, 'registry.ts'), 'utf8');
    for (const f of MODEL_FAMILIES) {
      expect(existsSync(join(FAMILIES_DIR, f.id)), f.id).toBe(true);
      expect(registry).toContain(`./${f.id}/`);
      expect(modelFamily(f.id)).toBe(f);
    }
    // Every folder is a registered family: nothing is described outside the registry.
    const folders = readdirSync(FAMILIES_DIR, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    expect(folders.sort()).toEqual(MODEL_FAMILIES.map((f) => f.id).sort());
  });

  for (const [id, path] of Object.entries(FILES)) {
    it(`detects ${id} from the keys of a real-layout file, as the checkpoint reader does`, () => {
      const file = SafetensorsFile.open(path);
      const family = detectModelFamily(file);
      expect(family?.id).toBe(id);
      expect(detectFamily(file)).toBe(id);
      // The descriptor's facts hold for the file: its prefixes and text encoders are where it says.
      expect(file.has(`${family!.prefixes.unet}input_blocks.0.0.weight`)).toBe(true);
      expect(file.has(`${family!.prefixes.vae}decoder.conv_in.weight`)).toBe(true);
      for (const te of family!.textEncoders) {
        const probe = te.layout === 'clip' ? 'final_layer_norm.weight' : 'ln_final.weight';
        expect(file.has(`${te.prefix}${probe}`), `${id} ${te.name} at ${te.prefix}`).toBe(true);
      }
      // y = pooled (projected, from the named encoder) + one embedding per id: the UNet's label_emb width.
      const adm = family!.conditioning.adm;
      const labelEmb = `${family!.prefixes.unet}label_emb.0.0.weight`;
      if (!adm) expect(file.has(labelEmb)).toBe(false);
      else {
        const pooledFrom = family!.textEncoders.find((t) => t.name === family!.conditioning.pooledFrom)!;
        const pooled = file.info(`${pooledFrom.prefix}text_projection`).shape[1]!;
        expect(file.info(labelEmb).shape[1]).toBe(pooled + adm.ids.length * adm.embedDim);
      }
      // Every family that loads has its node bindings.
      if (family!.loadable) expect(familyNodes(id as LoadedFamilyId).family).toBe(family);
    });
  }

  it('detects SD2.x by its OpenCLIP-H encoder and nothing from files that are no checkpoint', () => {
    const sd2 = new Set(['model.diffusion_model.input_blocks.0.0.weight', 'cond_stage_model.model.ln_final.weight']);
    expect(detectModelFamily((k) => sd2.has(k))?.id).toBe('sd2');
    expect(modelFamily('sd2').loadable).toBe(false);
    expect(detectModelFamily(SafetensorsFile.open(shared('conformance', 'models', 'controlnet-a.safetensors')))).toBeUndefined();
  });

  it('each released ResAdapter variant belongs to exactly one family, one that trains', () => {
    for (const variant of readdirSync(shared('resadapter'))) {
      const owns = (marker: string | null) => marker !== null && (variant.endsWith(`_${marker}`) || variant.includes(`_${marker}_`));
      const owners = MODEL_FAMILIES.filter((f) => owns(f.resAdapter.releasedMarker));
      expect(owners.map((f) => f.id), variant).toHaveLength(1);
      expect(owners[0]!.training.supported).toBe(true);
    }
  });
});
