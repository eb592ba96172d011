/**
 * int8 on the shipped ResFlow Shapes UNet: the eps error int8 adds, on real prompts' conditioning. The tiny model
 * (32-64 channels) is where per-tensor activation quantisation is hardest; 1×1 convs over a channel concat (the
 * decoder's skip connections) stay fp32 because they made up most of this error (lower-int8.ts).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelFolders } from '../../runtime/config/model-folders.js';
import { relativeRms } from '../../runtime/graph/quantize.js';
import { SeededRandom } from '../../runtime/models/synthetic/generate.js';
import { UnetModel } from '../../runtime/models/unet/model.js';
import { loadSd1 } from '../../runtime/pipeline/sd1-loader.js';
import { ensureShapesModel } from '../../runtime/shapes/provision.js';
import { tokenizeWithWeights } from '../../runtime/text/prompt-weights.js';

describe('int8 on the ResFlow Shapes UNet', () => {
  it('keeps eps within 2% relative RMS of fp32 on prompted noise at 128² and 256²', async () => {
    const folders = new ModelFolders(mkdtempSync(join(tmpdir(), 'resflow-shapes-int8-')));
    const m = await loadSd1(ensureShapesModel(folders.modelsDir).checkpoint, folders);
    const captions = ['a red circle on a blue background', 'a yellow square on a black background'];
    const conds: Float32Array[] = [];
    for (const c of captions) {
      // The window CLIPTextEncode builds: start, caption, end, padding to 77.
      const window = tokenizeWithWeights(m.tokenizer, c)[0]!.map((t) => ('id' in t ? t.id : m.tokenizer.endId));
      conds.push(Float32Array.from((await m.clip.encodeTokens([window])).cond));
    }
    const context = { data: Float32Array.from([...conds[0]!, ...conds[1]!]), dims: [2, 77, 64] };
    const int8 = new UnetModel(m.unet.weights, m.unet.config);
    int8.precision = 'int8';
    const errors: number[] = [];
    for (const side of [16, 32]) {
      for (const t of [999, 500]) {
        const sigma = m.sampling.timestepToSigma(t);
        const x = new SeededRandom(side + t).fillNormal(new Float32Array(2 * 4 * side * side), 0, sigma / Math.sqrt(sigma * sigma + 1));
        const feeds = [{ data: x, dims: [2, 4, side, side] }, new Float32Array([t, t]), context] as const;
        const ref = (await m.unet.eps(...feeds)).data as Float32Array;
        errors.push(relativeRms((await int8.eps(...feeds)).data as Float32Array, ref));
      }
    }
    // Measured 0.64–0.91e-2; with the skip connections quantised too, 3.1–3.5e-2.
    for (const e of errors) {
      expect(e).toBeGreaterThan(1e-4);
      expect(e).toBeLessThan(0.02);
    }
  }, 120_000);
});
