/**
 * ResFlow Shapes: a procedural world small enough for ResFlow to train a diffusion model on from scratch.
 * Each picture holds one circle, square or triangle of a named colour on a background of another named
 * colour (flat, or a gentle vertical brightness ramp), rendered analytically at any width × height, so the
 * same scene can be drawn at the base resolution and at every size the resolution experiments use.
 */
import { randomFor } from '../models/synthetic/generate.js';

export const SHAPE_KINDS = ['circle', 'square', 'triangle'] as const;
export type ShapeKind = (typeof SHAPE_KINDS)[number];

export type ColourName = 'red' | 'green' | 'blue' | 'yellow' | 'white' | 'black';
/** Six colours far apart in RGB (pairwise distance ≥ ~200), so a scorer can name any pixel without doubt. */
export const COLOUR_NAMES: readonly ColourName[] = ['red', 'green', 'blue', 'yellow', 'white', 'black'];
export const SHAPE_COLOURS: Readonly<Record<ColourName, readonly [number, number, number]>> = {
  red: [220, 40, 40],
  green: [40, 180, 60],
  blue: [40, 70, 220],
  yellow: [240, 215, 40],
  white: [240, 240, 240],
  black: [20, 20, 20],
};

export interface ShapeScene {
  shape: ShapeKind;
  colour: ColourName;
  background: ColourName;
  /** 0 = flat; otherwise the background brightens by this fraction of full scale from top to bottom (may be negative). */
  gradient: number;
  /** Object centre as fractions of width and height. */
  cx: number;
  cy: number;
  /** Object extent (circle diameter, square side, triangle base and height) as a fraction of the short side. */
  size: number;
}

export const SIZE_RANGE = [0.35, 0.6] as const;
/** Largest offset of the centre from 0.5, as a fraction of each side. */
export const CENTRE_JITTER = 0.08;
export const MAX_GRADIENT = 0.12;

/** Scene `index` of the stream `seed`: each scene is drawn from its own generator, so any index is O(1). */
export function sampleScene(seed: number, index: number): ShapeScene {
  const rng = randomFor(`shapes/${index}`, seed);
  const pick = <X>(xs: readonly X[]): X => xs[Math.min(xs.length - 1, Math.floor(rng.uniform() * xs.length))]!;
  const shape = pick(SHAPE_KINDS);
  const colour = pick(COLOUR_NAMES);
  const background = pick(COLOUR_NAMES.filter((c) => c !== colour));
  const flat = rng.uniform() < 0.5;
  const ramp = (rng.uniform() * 2 - 1) * MAX_GRADIENT;
  const cx = 0.5 + (rng.uniform() * 2 - 1) * CENTRE_JITTER;
  const cy = 0.5 + (rng.uniform() * 2 - 1) * CENTRE_JITTER;
  const size = SIZE_RANGE[0] + rng.uniform() * (SIZE_RANGE[1] - SIZE_RANGE[0]);
  return { shape, colour, background, gradient: flat ? 0 : ramp, cx, cy, size };
}

export function sceneCaption(scene: ShapeScene): string {
  return `a ${scene.colour} ${scene.shape} on a ${scene.background} background`;
}

/**
 * Signed distance in pixels from (px, py) to the object's outline (negative inside). The triangle is
 * equilateral-looking (base = height = extent), pointing up, its bounding box centred on (cx, cy).
 */
function signedDistance(shape: ShapeKind, px: number, py: number, cx: number, cy: number, extent: number): number {
  const half = extent / 2;
  const dx = px - cx;
  const dy = py - cy;
  if (shape === 'circle') return Math.hypot(dx, dy) - half;
  if (shape === 'square') return Math.max(Math.abs(dx), Math.abs(dy)) - half;
  // Triangle apex (0, −half), base corners (±half, +half); the slanted sides have outward normals (±2, −1)/√5.
  const slant = (side: number) => (2 * side * dx - (dy + half)) / Math.sqrt(5);
  return Math.max(dy - half, slant(1), slant(-1));
}

/** RGB, row-major HWC, 8-bit; edges antialiased by the pixel's coverage of the outline. */
export function renderScene(scene: ShapeScene, width: number, height: number): Uint8Array {
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new Error(`renderScene: width and height must be positive integers, got ${width}×${height}`);
  }
  const out = new Uint8Array(width * height * 3);
  const fg = SHAPE_COLOURS[scene.colour];
  const bg = SHAPE_COLOURS[scene.background];
  const extent = scene.size * Math.min(width, height);
  const cx = scene.cx * width;
  const cy = scene.cy * height;
  for (let y = 0; y < height; y++) {
    const shift = scene.gradient * 255 * ((y + 0.5) / height - 0.5);
    for (let x = 0; x < width; x++) {
      const d = signedDistance(scene.shape, x + 0.5, y + 0.5, cx, cy, extent);
      const cover = Math.min(1, Math.max(0, 0.5 - d));
      const o = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) {
        const b = Math.min(255, Math.max(0, bg[c]! + shift));
        out[o + c] = Math.round(b + (fg[c]! - b) * cover);
      }
    }
  }
  return out;
}
