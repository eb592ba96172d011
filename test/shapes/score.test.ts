import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { COLOUR_NAMES, renderScene, sampleScene, sceneCaption, SHAPE_COLOURS, SHAPE_KINDS, type ColourName, type ShapeScene } from '../../runtime/shapes/dataset.js';
import { classifyShape, nearestColour, scoreScene, type RgbImage } from '../../runtime/shapes/score.js';

const scene = (over: Partial<ShapeScene> = {}): ShapeScene => ({ shape: 'circle', colour: 'red', background: 'blue', gradient: 0, cx: 0.5, cy: 0.5, size: 0.5, ...over });
const render = (s: ShapeScene, w: number, h: number): RgbImage => ({ data: renderScene(s, w, h), width: w, height: h });

/** A flat image with axis-aligned rectangles painted on it. */
function canvas(w: number, h: number, bg: ColourName, rects: Array<[x: number, y: number, rw: number, rh: number, c: ColourName]>): RgbImage {
  const data = new Uint8Array(w * h * 3);
  const paint = (x: number, y: number, c: ColourName) => data.set(SHAPE_COLOURS[c], (y * w + x) * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) paint(x, y, bg);
  for (const [x0, y0, rw, rh, c] of rects) for (let y = y0; y < y0 + rh; y++) for (let x = x0; x < x0 + rw; x++) paint(x, y, c);
  return { data, width: w, height: h };
}

describe('shapes scorer', () => {
  it('an empty background: no object, background named', () => {
    const s = scoreScene(canvas(64, 64, 'green', []), { shape: 'square', colour: 'red', background: 'green' });
    expect(s.objects).toHaveLength(0);
    expect(s.background).toBe('green');
    expect(s.checks).toEqual({ oneObject: false, objectColour: false, shape: false, background: true });
    expect(s.pass).toBe(false);
  });

  it('one object passes every check; two objects fail only the one-object check', () => {
    const one = scoreScene(canvas(64, 64, 'black', [[20, 20, 24, 24, 'yellow']]), { shape: 'square', colour: 'yellow', background: 'black' });
    expect(one.objects).toHaveLength(1);
    expect(one.objects[0]!.area).toBe(24 * 24);
    expect(one.pass).toBe(true);
    const two = scoreScene(canvas(96, 64, 'black', [[8, 20, 24, 24, 'yellow'], [56, 16, 30, 30, 'yellow']]), { shape: 'square', colour: 'yellow', background: 'black' });
    expect(two.objects).toHaveLength(2);
    expect(two.objects[0]!.area).toBe(900);
    expect(two.checks).toEqual({ oneObject: false, objectColour: true, shape: true, background: true });
  });

  it('a blob covering most of the image is not one object on a background', () => {
    const s = scoreScene(canvas(64, 64, 'black', [[2, 2, 60, 60, 'white']]), { shape: 'square', colour: 'white', background: 'black' });
    expect(s.objects).toHaveLength(1);
    expect(s.checks.oneObject).toBe(false);
  });

  it('specks below the area threshold are not objects', () => {
    const s = scoreScene(canvas(100, 100, 'white', [[30, 30, 40, 40, 'red'], [5, 90, 3, 3, 'blue']]), { shape: 'square', colour: 'red', background: 'white' });
    expect(s.objects).toHaveLength(1);
    expect(s.specks).toBe(1);
    expect(s.pass).toBe(true);
  });

  it('the speck threshold is a quarter of the smallest object the dataset draws, at any size', () => {
    // Smallest object: a triangle 0.35 × 128 = 44.8 px wide and high, 1003.5 px²; a quarter of it is 251 px².
    const specks = canvas(128, 128, 'white', [[40, 40, 48, 48, 'red'], [4, 4, 15, 15, 'blue'], [100, 100, 12, 12, 'blue']]);
    const s = scoreScene(specks, { shape: 'square', colour: 'red', background: 'white' });
    expect(s.objects.map((o) => o.area)).toEqual([48 * 48]);
    expect(s.specks).toBe(2);
    const duplicate = canvas(128, 128, 'white', [[10, 40, 48, 48, 'red'], [100, 100, 18, 18, 'red']]);
    expect(scoreScene(duplicate, { shape: 'square', colour: 'red', background: 'white' }).objects.map((o) => o.area)).toEqual([48 * 48, 18 * 18]);
    // The same picture scaled 2× keeps its verdict.
    const big = canvas(256, 256, 'white', [[20, 80, 96, 96, 'red'], [200, 200, 36, 36, 'red'], [8, 8, 30, 30, 'blue']]);
    const b = scoreScene(big, { shape: 'square', colour: 'red', background: 'white' });
    expect(b.objects.map((o) => o.area)).toEqual([96 * 96, 36 * 36]);
    expect(b.specks).toBe(1);
  });

  it('names every colour, as object and as background', () => {
    for (const c of COLOUR_NAMES) {
      expect(nearestColour(...SHAPE_COLOURS[c])).toBe(c);
      const bg = c === 'black' ? 'white' : 'black';
      const asObject = scoreScene(render(scene({ colour: c, background: bg }), 64, 64), { shape: 'circle', colour: c, background: bg });
      expect(asObject.objects[0]?.colour).toBe(c);
      expect(asObject.pass).toBe(true);
      const fg = c === 'red' ? 'green' : 'red';
      const asBackground = scoreScene(render(scene({ colour: fg, background: c }), 64, 64), { shape: 'circle', colour: fg, background: c });
      expect(asBackground.background).toBe(c);
      expect(asBackground.pass).toBe(true);
    }
  });

  it('tells each shape apart at small, base and large sizes and at both off-aspect sizes', () => {
    for (const shape of SHAPE_KINDS) {
      for (const [w, h] of [[64, 64], [128, 128], [256, 256], [128, 256], [256, 128]] as const) {
        for (const size of [0.35, 0.6]) {
          const s = scoreScene(render(scene({ shape, size, colour: 'white', background: 'red' }), w, h), { shape, colour: 'white', background: 'red' });
          expect(s.objects, `${shape} ${w}x${h} size ${size}`).toHaveLength(1);
          expect(s.objects[0]!.shape, `${shape} ${w}x${h} size ${size}: fill ${s.objects[0]!.fill} asym ${s.objects[0]!.asymmetry}`).toBe(shape);
        }
      }
    }
  });

  it('an object stretched by an off-aspect render keeps its shape class (ellipse → circle, rectangle → square)', () => {
    const ellipse = canvas(128, 64, 'blue', []);
    for (let y = 0; y < 64; y++) {
      for (let x = 0; x < 128; x++) if (((x + 0.5 - 64) / 40) ** 2 + ((y + 0.5 - 32) / 20) ** 2 <= 1) ellipse.data.set(SHAPE_COLOURS.yellow, (y * 128 + x) * 3);
    }
    expect(scoreScene(ellipse, { shape: 'circle', colour: 'yellow', background: 'blue' }).pass).toBe(true);
    expect(scoreScene(canvas(128, 64, 'blue', [[24, 16, 80, 32, 'green']]), { shape: 'square', colour: 'green', background: 'blue' }).pass).toBe(true);
  });

  it('a wrong prompt fails exactly the checks it gets wrong', () => {
    const img = render(scene({ shape: 'triangle', colour: 'green', background: 'yellow' }), 96, 96);
    expect(scoreScene(img, { shape: 'triangle', colour: 'green', background: 'yellow' }).pass).toBe(true);
    expect(scoreScene(img, { shape: 'circle', colour: 'blue', background: 'white' }).checks).toEqual({ oneObject: true, objectColour: false, shape: false, background: false });
  });

  it('scores dataset scenes (gradients, jitter, all sizes) as passing', () => {
    let failures = 0;
    for (let i = 0; i < 60; i++) {
      const s = sampleScene(5, i);
      const [w, h] = [[64, 64], [128, 128], [96, 192]][i % 3]!;
      if (!scoreScene(render(s, w!, h!), s).pass) failures++;
    }
    expect(failures).toBe(0);
  });

  it('soft edges, as a diffusion model draws them, do not change the verdict', async () => {
    for (let i = 0; i < 24; i++) {
      const s = sampleScene(11, i);
      const [w, h] = [[128, 128], [64, 64], [256, 128]][i % 3]!;
      const blurred = await sharp(Buffer.from(renderScene(s, w!, h!)), { raw: { width: w!, height: h!, channels: 3 } }).blur((2 * Math.min(w!, h!)) / 128).raw().toBuffer();
      const r = scoreScene({ data: new Uint8Array(blurred), width: w!, height: h! }, s);
      expect(r.checks, `${sceneCaption(s)} at ${w}x${h}`).toEqual({ oneObject: true, objectColour: true, shape: true, background: true });
    }
  });

  it('classifies the ideal feature values and rejects malformed input', () => {
    expect(classifyShape(1, 0)).toBe('square');
    expect(classifyShape(Math.PI / 4, 0.02)).toBe('circle');
    expect(classifyShape(0.5, 0.5)).toBe('triangle');
    expect(() => scoreScene({ data: new Uint8Array(10), width: 4, height: 4 }, { shape: 'circle', colour: 'red', background: 'blue' })).toThrow(/48/);
  });
});
