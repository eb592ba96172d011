import { copyFileSync, mkdtempSync, openSync, closeSync, ftruncateSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { detectFamily, openSd1Checkpoint } from '../../runtime/models/checkpoint.js';
import { inferUnetConfig } from '../../runtime/models/unet/config.js';
import { UnetModel } from '../../runtime/models/unet/model.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../../runtime/safetensors/index.js';
import { shared } from '../shared-data.js';

const TINY = shared('conformance', 'models', 'tiny-sd15-a.safetensors');
const SDXL = shared('conformance-sdxl', 'models', 'tiny-sdxl-a.safetensors');

function rewrite(edit: (name: string, t: TensorToWrite) => TensorToWrite | null): string {
  const src = SafetensorsFile.open(TINY);
  const out: Record<string, TensorToWrite> = {};
  for (const k of src.keys()) {
    const info = src.info(k);
    const t = edit(k, { dtype: info.dtype, shape: info.shape, data: src.readBytes(k) });
    if (t) out[k] = t;
  }
  const path = join(mkdtempSync(join(tmpdir(), 'resflow-ckpt-')), 'edited.safetensors');
  writeSafetensors(path, out);
  return path;
}

async function buildUnet(path: string) {
  const ck = openSd1Checkpoint(path);
  const u = new UnetModel(ck.unet, inferUnetConfig(ck.unet, { numHeads: 2 }));
  await u.session(false);
}

describe('bad checkpoints give errors naming the key or file', () => {
  it('recognises families and refuses an SDXL file given as SD1.5', () => {
    expect(detectFamily(SafetensorsFile.open(TINY))).toBe('sd1');
    expect(detectFamily(SafetensorsFile.open(SDXL))).toBe('sdxl');
    expect(() => openSd1Checkpoint(SDXL)).toThrow(/tiny-sdxl-a\.safetensors: this is SDXL file, not a Stable Diffusion 1\.x checkpoint/);
  });

  it('a missing UNet key', async () => {
    const path = rewrite((k, t) => (k === 'model.diffusion_model.input_blocks.1.0.out_layers.3.weight' ? null : t));
    await expect(buildUnet(path)).rejects.toThrow(/model\.diffusion_model\.input_blocks\.1\.0\.out_layers\.3\.weight/);
  });

  it('a wrong shape', async () => {
    const path = rewrite((k, t) =>
      k === 'model.diffusion_model.middle_block.0.in_layers.2.weight' ? { dtype: 'F32', shape: [64, 64, 1, 1], data: new Float32Array(64 * 64) } : t,
    );
    await expect(buildUnet(path)).rejects.toThrow(/middle_block\.0\.in_layers\.2/);
  });

  it('a truncated file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'resflow-trunc-'));
    const path = join(dir, 'truncated.safetensors');
    copyFileSync(TINY, path);
    const fd = openSync(path, 'r+');
    ftruncateSync(fd, Math.floor(statSync(path).size / 2));
    closeSync(fd);
    expect(() => openSd1Checkpoint(path)).toThrow(/truncated\.safetensors.*(truncated|past the)/);
  });

  it('a file that is not a checkpoint', () => {
    const path = rewrite((k, t) => (k.startsWith('model.diffusion_model.') ? null : t));
    expect(() => openSd1Checkpoint(path)).toThrow(/edited\.safetensors: .*not a Stable Diffusion 1\.x checkpoint/);
  });
});
