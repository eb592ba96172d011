import { describe, expect, it } from 'vitest';
import { SD15_LATENT_FORMAT } from '../../runtime/sampling/model-sampling.js';
import { fitPreviewFactors, PREVIEW_FACTORS_KEY, withPreviewFactors } from '../../runtime/sampling/preview-factors.js';
import { latentPreview } from '../../runtime/sampling/preview.js';
import { SeededRandom } from '../../runtime/models/synthetic/generate.js';
import { ModelFolders } from '../../runtime/config/model-folders.js';
import { loadSd1 } from '../../runtime/pipeline/sd1-loader.js';
import { ensureShapesModel } from '../../runtime/shapes/provision.js';
import { renderScene, sampleScene } from '../../runtime/shapes/dataset.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe("a checkpoint's own latent preview colours", () => {
  it('fits a known linear latent → RGB map exactly', () => {
    const truth = { factors: [[0.5, -0.25, 0.125], [0.1, 0.2, 0.3], [-0.4, 0.05, 0.6], [0.25, 0.25, -0.5]], bias: [0.1, -0.2, 0.05] };
    const [n, plane] = [3, 20];
    const latents = new SeededRandom(4).fillNormal(new Float32Array(n * 4 * plane), 0, 1);
    const images = new Float32Array(n * 3 * plane);
    for (let i = 0; i < n; i++) {
      for (let p = 0; p < plane; p++) {
        for (let c = 0; c < 3; c++) {
          let v = truth.bias[c]!;
          for (let k = 0; k < 4; k++) v += latents[(i * 4 + k) * plane + p]! * truth.factors[k]![c]!;
          images[(i * 3 + c) * plane + p] = v;
        }
      }
    }
    const fit = fitPreviewFactors(latents, images, n, 4);
    for (let k = 0; k < 4; k++) for (let c = 0; c < 3; c++) expect(fit.factors[k]![c]).toBeCloseTo(truth.factors[k]![c]!, 3);
    for (let c = 0; c < 3; c++) expect(fit.bias[c]).toBeCloseTo(truth.bias[c]!, 3);
  });

  it('reads the map from metadata, and names the key and file when it is malformed', () => {
    expect(withPreviewFactors(SD15_LATENT_FORMAT, {}, 'x.safetensors')).toBe(SD15_LATENT_FORMAT);
    const f = withPreviewFactors(SD15_LATENT_FORMAT, { [PREVIEW_FACTORS_KEY]: JSON.stringify({ factors: [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]], bias: [0, 0, 0.5] }) }, 'x.safetensors');
    expect(f.rgbFactors[1]).toEqual([0, 1, 0]);
    expect(f.rgbBias).toEqual([0, 0, 0.5]);
    expect(f.scaleFactor).toBe(SD15_LATENT_FORMAT.scaleFactor);
    expect(() => withPreviewFactors(SD15_LATENT_FORMAT, { [PREVIEW_FACTORS_KEY]: '{"factors": [[1, 0, 0]], "bias": [0, 0, 0]}' }, 'x.safetensors')).toThrow(/x\.safetensors: metadata "resflow\.latent_rgb_factors" must be/);
  });

  it('the shipped Shapes checkpoint previews its own latents in the scene colours (SD1.5 factors do not)', async () => {
    const folders = new ModelFolders(mkdtempSync(join(tmpdir(), 'resflow-preview-')));
    const m = await loadSd1(ensureShapesModel(folders.modelsDir).checkpoint, folders);
    const format = m.sampling.latentFormat;
    expect(format.rgbFactors).not.toEqual(SD15_LATENT_FORMAT.rgbFactors);
    let [own, stock] = [0, 0];
    for (let i = 0; i < 4; i++) {
      const rgb = renderScene(sampleScene(7, i), 128, 128);
      const z = await m.vae.encode({ data: Float32Array.from(rgb, (v) => v / 255), shape: [1, 128, 128, 3] });
      const scaled = Float32Array.from(z.data, (v) => v * format.scaleFactor);
      const err = (f: typeof format) => {
        const prev = latentPreview({ data: scaled, shape: [1, 4, 16, 16] }, f).rgb;
        let e = 0;
        for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) for (let c = 0; c < 3; c++) e += Math.abs(prev[(y * 16 + x) * 3 + c]! - rgb[((y * 8 + 4) * 128 + x * 8 + 4) * 3 + c]!);
        return e / (16 * 16 * 3);
      };
      own += err(format) / 4;
      stock += err(SD15_LATENT_FORMAT) / 4;
    }
    expect(own).toBeLessThan(40); // mean |Δ| per channel, of 255
    expect(own).toBeLessThan(stock / 2);
  });
});
