/**
 * Scores a generated picture against the scene its prompt asked for, with checks anyone can recompute:
 * the background's colour (the border's dominant named colour), exactly one object (connected components of
 * the pixels that are not background), the object's colour (nearest named colour of its median) and its
 * shape. Shape features are ratios of the component to its own bounding box, so they do not depend on the
 * object's size or on an axis-aligned stretch (a circle drawn at an off-aspect size stays "round").
 */
import { COLOUR_NAMES, SHAPE_COLOURS, SHAPE_KINDS, SIZE_RANGE, type ColourName, type ShapeKind } from './dataset.js';

/** Area of the smallest object the dataset draws, over the short side squared: a triangle of base = height = 0.35. */
const SMALLEST_OBJECT_AREA = 0.5 * SIZE_RANGE[0] ** 2;
/** Components below this share of the smallest object are specks. */
const SPECK_SHARE = 0.25;

export interface RgbImage {
  /** Row-major HWC, 3 channels, 8-bit. */
  data: Uint8Array;
  width: number;
  height: number;
}

export interface ExpectedScene {
  shape: ShapeKind;
  colour: ColourName;
  background: ColourName;
}

export interface ScoreOptions {
  /**
   * Components smaller than this fraction of the image are specks, not objects. Default: a quarter of the
   * smallest object the dataset draws (a triangle 0.35 × the short side wide and high), in pixels of this
   * image, so sampling noise in a background does not count as a second object while a duplicate or a
   * broken-off half of an object still does.
   */
  minObjectFraction?: number;
  /** RGB distance from the background's mean colour below which a pixel counts as background (default 60). */
  backgroundDistance?: number;
  /** Border band width as a fraction of the short side (at least 1 pixel; default 0.03). */
  borderFraction?: number;
  /** A component covering more than this fraction of the image is not an object on a background (default 0.6). */
  maxObjectFraction?: number;
}

export interface ObjectInfo {
  area: number;
  /** Bounding box, inclusive. */
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  /** Per-channel median colour of the component's pixels. */
  median: [number, number, number];
  colour: ColourName;
  /** area / bounding-box area: square 1, circle π/4, triangle 1/2. */
  fill: number;
  /** Largest |mass in one half of the box − mass in the other| / area over both axes: 1/2 for a triangle, 0 for circle and square. */
  asymmetry: number;
  shape: ShapeKind;
}

export interface SceneScore {
  background: ColourName;
  /** Objects large enough to count, largest first. */
  objects: ObjectInfo[];
  /** Components dropped as specks. */
  specks: number;
  checks: { oneObject: boolean; objectColour: boolean; shape: boolean; background: boolean };
  /** All four checks hold. */
  pass: boolean;
}

export const CHECK_NAMES = ['oneObject', 'objectColour', 'shape', 'background'] as const;
export type CheckName = (typeof CHECK_NAMES)[number];

/** Nearest named colour (squared RGB distance). */
export function nearestColour(r: number, g: number, b: number): ColourName {
  let best: ColourName = COLOUR_NAMES[0]!;
  let bestD = Infinity;
  for (const name of COLOUR_NAMES) {
    const [cr, cg, cb] = SHAPE_COLOURS[name];
    const d = (r - cr) ** 2 + (g - cg) ** 2 + (b - cb) ** 2;
    if (d < bestD) [best, bestD] = [name, d];
  }
  return best;
}

/** Shape prototypes in (fill, asymmetry) space: the ideal values of each outline. */
const PROTOTYPES: Record<ShapeKind, [fill: number, asymmetry: number]> = {
  square: [1, 0],
  circle: [Math.PI / 4, 0],
  triangle: [0.5, 0.5],
};

export function classifyShape(fill: number, asymmetry: number): ShapeKind {
  let best: ShapeKind = SHAPE_KINDS[0];
  let bestD = Infinity;
  for (const kind of SHAPE_KINDS) {
    const [f, a] = PROTOTYPES[kind];
    const d = (fill - f) ** 2 + (asymmetry - a) ** 2;
    if (d < bestD) [best, bestD] = [kind, d];
  }
  return best;
}

function median(values: number[]): number {
  values.sort((a, b) => a - b);
  return values[Math.floor(values.length / 2)]!;
}

function checkImage(img: RgbImage): void {
  const { width, height, data } = img;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) throw new Error(`scoreScene: bad image size ${width}×${height}`);
  if (data.length !== width * height * 3) throw new Error(`scoreScene: ${data.length} bytes for a ${width}×${height} RGB image (want ${width * height * 3})`);
}

/** The border band's most common named colour and the mean RGB of the band pixels that carry it. */
function borderBackground(img: RgbImage, band: number): { name: ColourName; mean: [number, number, number] } {
  const { data, width, height } = img;
  const counts = new Map<ColourName, { n: number; sum: [number, number, number] }>();
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (x >= band && x < width - band && y >= band && y < height - band) continue;
      const o = (y * width + x) * 3;
      const name = nearestColour(data[o]!, data[o + 1]!, data[o + 2]!);
      const c = counts.get(name) ?? { n: 0, sum: [0, 0, 0] };
      c.n++;
      c.sum[0] += data[o]!;
      c.sum[1] += data[o + 1]!;
      c.sum[2] += data[o + 2]!;
      counts.set(name, c);
    }
  }
  let best: [ColourName, { n: number; sum: [number, number, number] }] | undefined;
  for (const e of counts) if (!best || e[1].n > best[1].n) best = e;
  const [name, c] = best!;
  return { name, mean: [c.sum[0] / c.n, c.sum[1] / c.n, c.sum[2] / c.n] };
}

/** Labels 8-connected components of `mask`; returns each component's pixel indices. */
function components(mask: Uint8Array, width: number, height: number): number[][] {
  const seen = new Uint8Array(mask.length);
  const out: number[][] = [];
  const stack: number[] = [];
  for (let start = 0; start < mask.length; start++) {
    if (!mask[start] || seen[start]) continue;
    const pixels: number[] = [];
    seen[start] = 1;
    stack.push(start);
    while (stack.length) {
      const p = stack.pop()!;
      pixels.push(p);
      const x = p % width;
      const y = (p - x) / width;
      for (let dy = -1; dy <= 1; dy++) {
        const ny = y + dy;
        if (ny < 0 || ny >= height) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const nx = x + dx;
          if (nx < 0 || nx >= width) continue;
          const q = ny * width + nx;
          if (mask[q] && !seen[q]) {
            seen[q] = 1;
            stack.push(q);
          }
        }
      }
    }
    out.push(pixels);
  }
  return out;
}

function describeObject(img: RgbImage, pixels: number[]): ObjectInfo {
  const { data, width } = img;
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -1;
  let y1 = -1;
  const ch: [number[], number[], number[]] = [[], [], []];
  for (const p of pixels) {
    const x = p % width;
    const y = (p - x) / width;
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
    for (let c = 0; c < 3; c++) ch[c]!.push(data[p * 3 + c]!);
  }
  // Halves split at the box's centre line; pixels on an odd box's middle row/column count half to each side.
  const midX = (x0 + x1) / 2;
  const midY = (y0 + y1) / 2;
  let left = 0;
  let top = 0;
  for (const p of pixels) {
    const x = p % width;
    const y = (p - x) / width;
    left += x < midX ? 1 : x === midX ? 0.5 : 0;
    top += y < midY ? 1 : y === midY ? 0.5 : 0;
  }
  const area = pixels.length;
  const fill = area / ((x1 - x0 + 1) * (y1 - y0 + 1));
  const asymmetry = Math.max(Math.abs(2 * left - area), Math.abs(2 * top - area)) / area;
  const med: [number, number, number] = [median(ch[0]), median(ch[1]), median(ch[2])];
  return { area, x0, y0, x1, y1, median: med, colour: nearestColour(...med), fill, asymmetry, shape: classifyShape(fill, asymmetry) };
}

/** Scores `img` against `expected`; pure and deterministic. */
export function scoreScene(img: RgbImage, expected: ExpectedScene, opts: ScoreOptions = {}): SceneScore {
  checkImage(img);
  const { data, width, height } = img;
  const short = Math.min(width, height);
  const minArea = opts.minObjectFraction !== undefined ? opts.minObjectFraction * width * height : SPECK_SHARE * SMALLEST_OBJECT_AREA * short * short;
  const bgDist = opts.backgroundDistance ?? 60;
  const band = Math.max(1, Math.round((opts.borderFraction ?? 0.03) * Math.min(width, height)));
  const bg = borderBackground(img, band);
  // A pixel is object when it is far from the background's colour and its nearest named colour is another one:
  // both conditions, so a background gradient or a soft edge never becomes an object by itself.
  const mask = new Uint8Array(width * height);
  for (let p = 0; p < mask.length; p++) {
    const r = data[p * 3]!;
    const g = data[p * 3 + 1]!;
    const b = data[p * 3 + 2]!;
    const far = (r - bg.mean[0]) ** 2 + (g - bg.mean[1]) ** 2 + (b - bg.mean[2]) ** 2 > bgDist * bgDist;
    if (far && nearestColour(r, g, b) !== bg.name) mask[p] = 1;
  }
  const all = components(mask, width, height);
  const kept = all.filter((c) => c.length >= minArea).sort((a, b) => b.length - a.length);
  const objects = kept.map((c) => describeObject(img, c));
  const main = objects[0];
  const checks = {
    // Noise or a broken render can join into one huge blob: that is not one object on a background.
    oneObject: objects.length === 1 && main!.area <= (opts.maxObjectFraction ?? 0.6) * width * height,
    objectColour: main !== undefined && main.colour === expected.colour,
    shape: main !== undefined && main.shape === expected.shape,
    background: bg.name === expected.background,
  };
  return { background: bg.name, objects, specks: all.length - kept.length, checks, pass: CHECK_NAMES.every((k) => checks[k]) };
}
