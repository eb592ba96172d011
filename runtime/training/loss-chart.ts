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

interface Panel {
  top: number;
  height: number;
}

/** One line chart over steps 0..totalSteps in `panel`, y-range from `ys`; returns its SVG elements. */
function linePanel(panel: Panel, totalSteps: number, ys: number[], lines: Array<{ pts: Array<[number, number]>; stroke: string; width: number; dots?: boolean }>): string {
  const finite = ys.filter(Number.isFinite);
  const lo = finite.length ? Math.min(...finite) : 0;
  const hi = finite.length ? Math.max(...finite) : 1;
  const span = hi - lo || Math.abs(hi) || 1;
  const x = (s: number) => PAD.l + ((W - PAD.l - PAD.r) * s) / Math.max(1, totalSteps);
  const y = (v: number) => panel.top + panel.height * (1 - (v - lo) / span);
  const path = (pts: Array<[number, number]>) => pts.map((p, i) => `${i ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join('');
  const ticks = [lo, lo + span / 2, lo + span]
    .map((v) => `<text x="${PAD.l - 6}" y="${y(v) + 4}" text-anchor="end">${fmt(v)}</text><line x1="${PAD.l}" x2="${W - PAD.r}" y1="${y(v)}" y2="${y(v)}" stroke="#333"/>`)
    .join('');
  const drawn = lines.map((l) => {
    const line = l.pts.length > 1 ? `<path d="${path(l.pts)}" fill="none" stroke="${l.stroke}" stroke-width="${l.width}"/>` : '';
    const dots = l.dots ? l.pts.map((p) => `<circle cx="${x(p[0]).toFixed(1)}" cy="${y(p[1]).toFixed(1)}" r="2.5" fill="${l.stroke}"/>`).join('') : '';
    return line + dots;
  });
  return ticks + drawn.join('');
}

const VALIDATION_PANEL = 110;

/**
 * The training-loss chart; with `validation` points, a second panel below shows the loss on fixed batches
 * (same images, timesteps and noise every time), on its own scale: the per-step loss mostly varies with the
 * timestep drawn, which hides the trend, while the fixed-batch loss only moves when the adapter does.
 */
export function lossChartSvg(history: Array<[number, number]>, totalSteps: number, title: string, subtitle = '', validation: Array<[number, number]> = []): string {
  const raw = thin(history, 400);
  const sm = smooth(history.map((h) => h[1]));
  const smoothed = thin(history.map((h, i) => [h[0], sm[i]!] as [number, number]), 400);
  const height = H + (validation.length ? VALIDATION_PANEL : 0);
  const main = linePanel({ top: PAD.t, height: H - PAD.t - PAD.b }, totalSteps, raw.map((p) => p[1]), [
    { pts: raw, stroke: '#4a6a8a', width: 1 },
    { pts: smoothed, stroke: '#6cf', width: 2 },
  ]);
  let second = '';
  if (validation.length) {
    const top = H + 16;
    const first = validation[0]![1];
    const last = validation.at(-1)![1];
    const change = validation.length > 1 && first !== 0 ? ` (${(((last - first) / first) * 100).toFixed(1)} % since step ${validation[0]![0]})` : '';
    second =
      `<text x="8" y="${H + 4}" fill="#fc6">fixed-batch loss ${fmt(last)}${esc(change)}</text>` +
      linePanel({ top, height: VALIDATION_PANEL - 16 - PAD.b }, totalSteps, validation.map((p) => p[1]), [{ pts: validation, stroke: '#fc6', width: 2, dots: true }]);
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" font-family="sans-serif" font-size="11" fill="#ccc">
<rect width="100%" height="100%" fill="#1e1e1e"/>
<text x="8" y="16" font-size="12">${esc(title)}</text><text x="8" y="32" fill="#999">${esc(subtitle)}</text>${main}
<text x="${W - PAD.r}" y="${height - 6}" text-anchor="end">${totalSteps}</text><text x="${PAD.l}" y="${height - 6}">0</text>
${second}
</svg>`;
}

export async function lossChartPng(history: Array<[number, number]>, totalSteps: number, title: string, subtitle = '', validation: Array<[number, number]> = []): Promise<Uint8Array> {
  return new Uint8Array(await sharp(Buffer.from(lossChartSvg(history, totalSteps, title, subtitle, validation))).png({ compressionLevel: 3 }).toBuffer());
}
