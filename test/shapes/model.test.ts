/**
 * The shipped ResFlow Shapes checkpoint: an ordinary SD1.x single file (original key layout, F16, small)
 * that the loaders provision and open with its own tokenizer, and whose text encoder sees one token per word.
 */
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelFolders } from '../../runtime/config/model-folders.js';
import { loadSd1 } from '../../runtime/pipeline/sd1-loader.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import { SHAPES_CHECKPOINT } from '../../runtime/shapes/arch.js';
import { ensureShapesModel, SHAPES_ASSET } from '../../runtime/shapes/provision.js';

describe('the shipped ResFlow Shapes checkpoint', () => {
  it('is an F16 SD1.x single file in the original layout, under 20 MB, with training provenance', () => {
    const f = SafetensorsFile.open(SHAPES_ASSET);
    expect(statSync(SHAPES_ASSET).size).toBeLessThan(20 * 2 ** 20);
    const keys = f.keys();
    for (const prefix of ['model.diffusion_model.', 'first_stage_model.', 'cond_stage_model.transformer.text_model.']) {
      expect(keys.some((k) => k.startsWith(prefix)), prefix).toBe(true);
    }
    expect(keys.every((k) => f.info(k).dtype === 'F16')).toBe(true);
    // The three down- and three upsampler convs a ResAdapter targets.
    expect(keys.filter((k) => /^model\.diffusion_model\.input_blocks\.\d+\.0\.op\.weight$/.test(k))).toHaveLength(3);
    expect(keys.filter((k) => /^model\.diffusion_model\.output_blocks\.\d+\.\d\.conv\.weight$/.test(k))).toHaveLength(3);
    expect(Number(f.metadata['resflow.shapes.unet_steps'])).toBeGreaterThan(0);
  });

  it('is provisioned into models/ and loads like any SD1.5 file, tokenizing caption words as single tokens', async () => {
    const data = mkdtempSync(join(tmpdir(), 'resflow-shapes-'));
    const folders = new ModelFolders(data);
    const p = ensureShapesModel(folders.modelsDir);
    expect(p.checkpoint).toBe(join(folders.modelsDir, 'checkpoints', SHAPES_CHECKPOINT));
    expect(folders.list('checkpoints')).toContain(SHAPES_CHECKPOINT);
    const m = await loadSd1(p.checkpoint, folders);
    expect(m.tokenizer.encode('a red circle on a blue background')).toHaveLength(7);
    const ids = m.tokenizer.encode('a yellow triangle on a black background');
    const enc = await m.clip.encodeTokens([[m.tokenizer.startId, ...ids, ...Array(77 - 1 - ids.length).fill(m.tokenizer.endId)]]);
    expect(enc.condDims).toEqual([1, 77, 64]);
    expect(enc.cond.every(Number.isFinite)).toBe(true);
    expect(m.unet.config.modelChannels).toBe(32);
    expect(m.vae.downscale).toBe(8);
  });
});
