/**
 * A small generated training set for the demo workflow and tests: ResFlow Shapes scenes (the world the
 * shipped Shapes model was trained on) at several aspect ratios, each with a same-name .txt caption.
 * Deterministic.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { renderScene, sampleScene, sceneCaption } from '../shapes/dataset.js';

export const DEMO_DATASET = 'resflow-demo-dataset';
/** Scene stream of the demo set (any seed works; this one is fixed so the set never changes). */
const DEMO_SCENE_SEED = 4242;

export interface DemoImageSpec {
  name: string;
  width: number;
  height: number;
  caption: string;
}

/** The images of the demo set: one per aspect ratio of the recipe, big enough for 256-pixel buckets. */
export function demoDatasetSpecs(): DemoImageSpec[] {
  const sizes: Array<[number, number]> = [
    [320, 320], [384, 288], [288, 384], [384, 256], [256, 384], [448, 256], [256, 448], [352, 352],
  ];
  return sizes.map(([width, height], i) => ({ name: `demo-${String(i).padStart(2, '0')}.png`, width, height, caption: sceneCaption(sampleScene(DEMO_SCENE_SEED, i)) }));
}

/** RGB pixels of one demo picture. */
export function demoPixels(spec: DemoImageSpec, index: number): Buffer {
  return Buffer.from(renderScene(sampleScene(DEMO_SCENE_SEED, index), spec.width, spec.height));
}

/** Writes the demo dataset under `<inputDir>/resflow-demo-dataset/` unless it is already there. */
export async function ensureDemoDataset(inputDir: string): Promise<string> {
  const dir = join(inputDir, DEMO_DATASET);
  const specs = demoDatasetSpecs();
  // A folder from an older demo set (other pictures, so other captions) is rewritten.
  const current = (s: DemoImageSpec) => {
    const txt = join(dir, s.name.replace(/\.png$/, '.txt'));
    return existsSync(join(dir, s.name)) && existsSync(txt) && readFileSync(txt, 'utf8') === `${s.caption}\n`;
  };
  if (specs.every(current)) return dir;
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
