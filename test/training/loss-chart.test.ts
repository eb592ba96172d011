import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { lossChartPng, lossChartSvg, smooth } from '../../runtime/training/loss-chart.js';

describe('training loss chart', () => {
  const history: Array<[number, number]> = Array.from({ length: 50 }, (_, i) => [i + 1, 0.05 + 0.1 * ((i * 7) % 5 === 0 ? 1 : 0)]);

  it('smooths with a bias-corrected moving average', () => {
    expect(smooth([2, 2, 2])).toEqual([2, 2, 2].map((v) => expect.closeTo(v, 12)));
  });

  it('adds a fixed-batch panel on its own scale, with the change since the first point', async () => {
    const plain = lossChartSvg(history, 50, 't');
    expect(plain).not.toContain('fixed-batch');
    const svg = lossChartSvg(history, 50, 't', '', [[0, 0.0534], [25, 0.05], [50, 0.0456]]);
    expect(svg).toContain('fixed-batch loss 0.0456 (-14.6 % since step 0)');
    // Its tick labels span the curve's own range, not the per-step loss's.
    expect(svg).toContain('>0.0534<');
    expect(svg).toContain('>0.0456<');
    expect((svg.match(/<circle /g) ?? []).length).toBe(3);
    const meta = await sharp(Buffer.from(await lossChartPng(history, 50, 't', '', [[0, 1], [50, 0.5]]))).metadata();
    expect(meta.height).toBeGreaterThan((await sharp(Buffer.from(await lossChartPng(history, 50, 't'))).metadata()).height!);
  });
});
