import { describe, expect, it } from 'vitest';
import { CENTRE_JITTER, COLOUR_NAMES, renderScene, sampleScene, sceneCaption, SHAPE_COLOURS, SHAPE_KINDS, SIZE_RANGE, type ShapeScene } from '../../runtime/shapes/dataset.js';

const pixel = (img: Uint8Array, w: number, x: number, y: number) => [...img.subarray((y * w + x) * 3, (y * w + x) * 3 + 3)];

describe('shapes dataset', () => {
  it('is deterministic per (seed, index) and differs across seeds', () => {
    expect(sampleScene(7, 3)).toEqual(sampleScene(7, 3));
    const a = Array.from({ length: 20 }, (_, i) => sampleScene(1, i));
    const b = Array.from({ length: 20 }, (_, i) => sampleScene(2, i));
    expect(a).not.toEqual(b);
    expect(renderScene(a[0]!, 40, 30)).toEqual(renderScene(sampleScene(1, 0), 40, 30));
  });

  it('draws scenes within the documented ranges and covers every shape and colour', () => {
    const scenes = Array.from({ length: 400 }, (_, i) => sampleScene(123, i));
    for (const s of scenes) {
      expect(s.colour).not.toBe(s.background);
      expect(s.size).toBeGreaterThanOrEqual(SIZE_RANGE[0]);
      expect(s.size).toBeLessThanOrEqual(SIZE_RANGE[1]);
      expect(Math.abs(s.cx - 0.5)).toBeLessThanOrEqual(CENTRE_JITTER);
      expect(Math.abs(s.cy - 0.5)).toBeLessThanOrEqual(CENTRE_JITTER);
    }
    expect(new Set(scenes.map((s) => s.shape))).toEqual(new Set(SHAPE_KINDS));
    expect(new Set(scenes.map((s) => s.colour))).toEqual(new Set(COLOUR_NAMES));
    expect(new Set(scenes.map((s) => s.background))).toEqual(new Set(COLOUR_NAMES));
    expect(scenes.filter((s) => s.gradient === 0).length).toBeGreaterThan(100);
    expect(scenes.filter((s) => s.gradient !== 0).length).toBeGreaterThan(100);
  });

  it('captions name colour, shape and background', () => {
    const s: ShapeScene = { shape: 'circle', colour: 'red', background: 'blue', gradient: 0, cx: 0.5, cy: 0.5, size: 0.5 };
    expect(sceneCaption(s)).toBe('a red circle on a blue background');
  });

  it('puts the object colour inside the object and the background colour outside, at any size', () => {
    for (const [w, h] of [[128, 128], [64, 64], [256, 128], [96, 200]] as const) {
      for (const shape of SHAPE_KINDS) {
        const s: ShapeScene = { shape, colour: 'yellow', background: 'green', gradient: 0, cx: 0.5, cy: 0.5, size: 0.5 };
        const img = renderScene(s, w, h);
        expect(img.length).toBe(w * h * 3);
        const side = Math.min(w, h) * 0.5;
        // Centre of the object, a point just inside its bottom edge, and the corners.
        expect(pixel(img, w, w / 2, h / 2)).toEqual([...SHAPE_COLOURS.yellow]);
        expect(pixel(img, w, w / 2, Math.floor(h / 2 + side / 2 - 2))).toEqual([...SHAPE_COLOURS.yellow]);
        for (const [x, y] of [[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]]) expect(pixel(img, w, x!, y!)).toEqual([...SHAPE_COLOURS.green]);
        // Just outside the top of the bounding box, and left of it.
        expect(pixel(img, w, w / 2, Math.floor(h / 2 - side / 2 - 2))).toEqual([...SHAPE_COLOURS.green]);
        expect(pixel(img, w, Math.floor(w / 2 - side / 2 - 2), h / 2)).toEqual([...SHAPE_COLOURS.green]);
      }
    }
  });

  it('tells shapes apart by their area and corners', () => {
    const area = (shape: ShapeScene['shape']) => {
      const img = renderScene({ shape, colour: 'white', background: 'black', gradient: 0, cx: 0.5, cy: 0.5, size: 0.5 }, 128, 128);
      let sum = 0;
      for (let i = 0; i < img.length; i += 3) sum += (img[i]! - 20) / 220;
      return sum / (64 * 64);
    };
    expect(area('square')).toBeCloseTo(1, 1);
    expect(area('circle')).toBeCloseTo(Math.PI / 4, 1);
    expect(area('triangle')).toBeCloseTo(0.5, 1);
    // The top corners of the square's box belong to the square only.
    const corner = (shape: ShapeScene['shape']) => pixel(renderScene({ shape, colour: 'white', background: 'black', gradient: 0, cx: 0.5, cy: 0.5, size: 0.5 }, 128, 128), 128, 34, 34);
    expect(corner('square')).toEqual([...SHAPE_COLOURS.white]);
    expect(corner('circle')).toEqual([...SHAPE_COLOURS.black]);
    expect(corner('triangle')).toEqual([...SHAPE_COLOURS.black]);
  });

  it('ramps the background gently when it has a gradient', () => {
    const s: ShapeScene = { shape: 'circle', colour: 'red', background: 'blue', gradient: 0.1, cx: 0.5, cy: 0.5, size: 0.4 };
    const img = renderScene(s, 64, 64);
    const top = pixel(img, 64, 0, 0);
    const bottom = pixel(img, 64, 0, 63);
    expect(bottom[2]! - top[2]!).toBeGreaterThan(20);
    expect(bottom[2]! - top[2]!).toBeLessThan(30);
  });
});
