/**
 * A small generated training set for the demo workflow and tests: procedural pictures (discs and stripes
 * on gradients) at several aspect ratios, each with a same-name .txt caption. Deterministic.
 */
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';

export const DEMO_DATASET = 'resflow-demo-dataset';

const COLOURS: Array<[string, [number, number, number]]> = [
  ['red', [220, 50, 40]],
  ['blue', [40, 80, 220]],
  ['green', [40, 170, 70]],
  ['yellow', [235, 210, 50]],
  ['purple', [140, 60, 190]],
  ['orange', [240, 140, 30]],
];

export interface DemoImageSpec {
  name: string;
  width: number;
  height: number;
  caption: string;
}

/** The images of the demo set: one or two per aspect ratio of the recipe, big enough for 256-pixel buckets. */
export function demoDatasetSpecs(): DemoImageSpec[] {
  const sizes: Array<[number, number]> = [
    [320, 320], [384, 288], [288, 384], [384, 256], [256, 384], [448, 256], [256, 448], [352, 352],
  ];
  return sizes.map(([width, height], i) => {
    const [fg] = COLOURS[i % COLOURS.length]!;
    const [bg] = COLOURS[(i + 3) % COLOURS.length]!;
    const shape = i % 2 ? 'stripes' : 'a disc';
    return { name: `demo-${String(i).padStart(2, '0')}.png`, width, height, caption: `${shape} in ${fg} on a ${bg} gradient` };
  });
}

/** RGB pixels of one demo picture. */
export function demoPixels(spec: DemoImageSpec, index: number): Buffer {
  const { width: w, height: h } = spec;
  const fg = COLOURS[index % COLOURS.length]![1];
  const bg = COLOURS[(index + 3) % COLOURS.length]![1];
  const px = Buffer.alloc(w * h * 3);
  const r = Math.min(w, h) * 0.3;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const shade = 0.55 + 0.45 * (y / h);
      const inside = index % 2 ? Math.floor((x + y) / (Math.min(w, h) / 8)) % 2 === 0 : (x - w / 2) ** 2 + (y - h / 2) ** 2 < r * r;
      for (let c = 0; c < 3; c++) px[(y * w + x) * 3 + c] = inside ? fg[c]! : Math.round(bg[c]! * shade);
    }
  }
  return px;
}

/** Writes the demo dataset under `<inputDir>/resflow-demo-dataset/` unless it is already there. */
export async function ensureDemoDataset(inputDir: string): Promise<string> {
  const dir = join(inputDir, DEMO_DATASET);
  const specs = demoDatasetSpecs();
  if (specs.every((s) => existsSync(join(dir, s.name)))) return dir;
  mkdirSync(dir, { recursive: true });
  for (const [i, s] of specs.entries()) {
    const png = await sharp(demoPixels(s, i), { raw: { width: s.width, height: s.height, channels: 3 } }).png().toBuffer();
    // Caption first: a folder never shows an image without its caption, even if this is cut short.
    writeFileSync(join(dir, s.name.replace(/\.png$/, '.txt')), `${s.caption}\n`);
    const tmp = join(dir, `.${s.name}.tmp-${process.pid}`);
    writeFileSync(tmp, png);
    renameSync(tmp, join(dir, s.name));
  }
  return dir;
}
