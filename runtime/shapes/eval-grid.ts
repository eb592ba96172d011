/**
 * A labelled contact sheet of an evaluation: one row per method, one column per size, each cell the first
 * few samples at their true pixel size (so a 64² image looks small next to a 256² one, as it is), with a
 * green or red bar under each image for whether it passed all four checks.
 */
import sharp, { type OverlayOptions } from 'sharp';
import type { EvalCell } from './eval-run.js';

export interface GridOptions {
  /** Samples shown per cell (default 2). */
  perCell?: number;
  title?: string;
}

const GAP = 6;
const BAR = 4;
const LABEL_W = 170;
const HEAD_H = 22;
const TITLE_H = 26;

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

export async function evalGridPng(cells: readonly EvalCell[], opts: GridOptions = {}): Promise<Buffer> {
  const perCell = Math.max(1, opts.perCell ?? 2);
  const methods = [...new Map(cells.map((c) => [c.method, c.label])).entries()];
  const sizes = [...new Map(cells.map((c) => [`${c.width}x${c.height}`, [c.width, c.height] as const])).entries()];
  const cellOf = (m: string, s: string) => cells.find((c) => c.method === m && `${c.width}x${c.height}` === s);
  // Column widths from the sizes, row heights from the tallest size: every cell lines up whatever failed.
  const colW = sizes.map(([, [w]]) => perCell * w + (perCell - 1) * 2 + GAP);
  const rowH = Math.max(...sizes.map(([, [, h]]) => h)) + BAR + GAP;
  const titleH = opts.title ? TITLE_H : 0;
  const width = LABEL_W + colW.reduce((a, b) => a + b, 0) + GAP;
  const height = titleH + HEAD_H + methods.length * rowH + GAP;
  const texts: string[] = [];
  const composites: OverlayOptions[] = [];
  if (opts.title) texts.push(`<text x="${GAP}" y="18" font-size="14" font-weight="bold">${esc(opts.title)}</text>`);
  let x = LABEL_W;
  sizes.forEach(([key, [w, h]], si) => {
    texts.push(`<text x="${x}" y="${titleH + 15}">${w}×${h}</text>`);
    methods.forEach(([m], mi) => {
      const cell = cellOf(m, key);
      const top = titleH + HEAD_H + mi * rowH;
      if (!cell?.samples.length) {
        texts.push(`<text x="${x}" y="${top + 14}" fill="#e66">${cell?.error ? 'error' : 'n/a'}</text>`);
        return;
      }
      cell.samples.slice(0, perCell).forEach((s, k) => {
        const left = x + k * (w + 2);
        composites.push({ input: Buffer.from(s.image.data.buffer, s.image.data.byteOffset, s.image.data.byteLength), raw: { width: w, height: h, channels: 3 }, top, left });
        texts.push(`<rect x="${left}" y="${top + h + 1}" width="${w}" height="${BAR - 1}" fill="${s.score.pass ? '#3c3' : '#e33'}"/>`);
      });
    });
    x += colW[si]!;
  });
  methods.forEach(([, label], mi) => {
    const top = titleH + HEAD_H + mi * rowH;
    texts.push(`<text x="${GAP}" y="${top + 16}">${esc(label)}</text>`);
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12" fill="#ddd">${texts.join('')}</svg>`;
  return sharp({ create: { width, height, channels: 3, background: { r: 24, g: 24, b: 28 } } })
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }, ...composites])
    .png({ compressionLevel: 6 })
    .toBuffer();
}
