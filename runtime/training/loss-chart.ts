/**
 * The live loss chart: an SVG rasterised by sharp, sent as the node's preview image so the editor shows it
 * on the TrainResAdapter node while training runs (the same channel samplers use for their previews).
 */
import sharp from 'sharp';
import type { StepMetrics } from './trainer.js';

const W = 512;
const H = 256;
const PAD = { l: 56, r: 12, t: 44, b: 24 };

/** Exponential moving average, as training dashboards smooth noisy per-step losses. */
export function smooth(values: readonly number[], beta = 0.9): number[] {
  let avg = 0;
  return values.map((v, i) => {
    avg = beta * avg + (1 - beta) * v;
    return avg / (1 - beta ** (i + 1));
  });
}

/** At most `n` points, each the mean of its span, so long runs draw in constant time. */
function thin(points: Array<[number, number]>, n: number): Array<[number, number]> {
  if (points.length <= n) return points;
  const out: Array<[number, number]> = [];
  const per = points.length / n;
  for (let k = 0; k < n; k++) {
    const span = points.slice(Math.floor(k * per), Math.max(Math.floor(k * per) + 1, Math.floor((k + 1) * per)));
    out.push([span[span.length - 1]![0], span.reduce((s, p) => s + p[1], 0) / span.length]);
  }
  return out;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
const fmt = (v: number) => (v === 0 ? '0' : Math.abs(v) >= 0.01 && Math.abs(v) < 1000 ? v.toPrecision(3) : v.toExponential(2));

export function metricsLine(m: StepMetrics, total: number): string {
  return `step ${m.step}/${total}  loss ${fmt(m.loss)}  lr ${fmt(m.lr)}  ${m.samplesPerSecond.toFixed(2)} samples/s  ${m.bucket}${m.normsUpdated ? '' : ' (norms frozen)'}`;
}

export function lossChartSvg(history: Array<[number, number]>, totalSteps: number, title: string, subtitle = ''): string {
  const raw = thin(history, 400);
  const sm = smooth(history.map((h) => h[1]));
  const smoothed = thin(history.map((h, i) => [h[0], sm[i]!] as [number, number]), 400);
  const ys = raw.map((p) => p[1]).filter(Number.isFinite);
  const lo = ys.length ? Math.min(...ys) : 0;
  const hi = ys.length ? Math.max(...ys) : 1;
  const span = hi - lo || Math.abs(hi) || 1;
  const x = (s: number) => PAD.l + ((W - PAD.l - PAD.r) * s) / Math.max(1, totalSteps);
  const y = (v: number) => PAD.t + (H - PAD.t - PAD.b) * (1 - (v - lo) / span);
  const path = (pts: Array<[number, number]>) => pts.map((p, i) => `${i ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join('');
  const ticks = [lo, lo + span / 2, lo + span]
    .map((v) => `<text x="${PAD.l - 6}" y="${y(v) + 4}" text-anchor="end">${fmt(v)}</text><line x1="${PAD.l}" x2="${W - PAD.r}" y1="${y(v)}" y2="${y(v)}" stroke="#333"/>`)
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11" fill="#ccc">
<rect width="100%" height="100%" fill="#1e1e1e"/>
<text x="8" y="16" font-size="12">${esc(title)}</text><text x="8" y="32" fill="#999">${esc(subtitle)}</text>${ticks}
<text x="${W - PAD.r}" y="${H - 6}" text-anchor="end">${totalSteps}</text><text x="${PAD.l}" y="${H - 6}">0</text>
${raw.length > 1 ? `<path d="${path(raw)}" fill="none" stroke="#4a6a8a" stroke-width="1"/>` : ''}
${smoothed.length > 1 ? `<path d="${path(smoothed)}" fill="none" stroke="#6cf" stroke-width="2"/>` : ''}
</svg>`;
}

export async function lossChartPng(history: Array<[number, number]>, totalSteps: number, title: string, subtitle = ''): Promise<Uint8Array> {
  return new Uint8Array(await sharp(Buffer.from(lossChartSvg(history, totalSteps, title, subtitle))).png({ compressionLevel: 3 }).toBuffer());
}
