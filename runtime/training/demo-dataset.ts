/**
 * A small generated training set for the demo workflow and tests: ResFlow Shapes scenes (the world the
 * shipped Shapes model was trained on) at several aspect ratios, each with a same-name .txt caption.
 * Deterministic.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
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

/** A generated set of Shapes scenes: its folder name under the input folder, size and scene stream. */
export interface ShapesSetSpec {
  name: string;
  count: number;
  sceneSeed: number;
}

/** The demo workflow's set: enough scenes that a short run learns the resolution, not the pictures. */
export const DEMO_SET: ShapesSetSpec = { name: DEMO_DATASET, count: 64, sceneSeed: DEMO_SCENE_SEED };

// One size per aspect ratio of the recipe, each big enough for its 256-pixel bucket; cycled over the set.
const SIZES: Array<[number, number]> = [
  [320, 320], [384, 288], [288, 384], [384, 256], [256, 384], [448, 256], [256, 448], [352, 352],
];

/** The images of a set, in order. */
export function demoDatasetSpecs(set: ShapesSetSpec = DEMO_SET): DemoImageSpec[] {
  return Array.from({ length: set.count }, (_, i) => {
    const [width, height] = SIZES[i % SIZES.length]!;
    return { name: `demo-${String(i).padStart(3, '0')}.png`, width, height, caption: sceneCaption(sampleScene(set.sceneSeed, i)) };
  });
}

/** RGB pixels of one picture of a set. */
export function demoPixels(spec: DemoImageSpec, index: number, set: ShapesSetSpec = DEMO_SET): Buffer {
  return Buffer.from(renderScene(sampleScene(set.sceneSeed, index), spec.width, spec.height));
}

/** Writes the demo dataset under `<inputDir>/resflow-demo-dataset/` unless it is already there. */
export async function ensureDemoDataset(inputDir: string): Promise<string> {
  return ensureShapesSet(inputDir, DEMO_SET);
}

/** Writes a generated Shapes set under `<inputDir>/<set.name>/` unless it is already complete. */
export async function ensureShapesSet(inputDir: string, set: ShapesSetSpec): Promise<string> {
  const dir = join(inputDir, set.name);
  const specs = demoDatasetSpecs(set);
  const names = new Set(specs.flatMap((s) => [s.name, s.name.replace(/\.png$/, '.txt')]));
  // A folder from an older demo set (other pictures, so other captions) is rewritten.
  const current = (s: DemoImageSpec) => {
    const txt = join(dir, s.name.replace(/\.png$/, '.txt'));
    return existsSync(join(dir, s.name)) && existsSync(txt) && readFileSync(txt, 'utf8') === `${s.caption}\n`;
  };
  if (specs.every(current)) return dir;
  mkdirSync(dir, { recursive: true });
  // Pictures of an older version of the set (another count or naming) would join the training data.
  for (const f of readdirSync(dir)) if (/^demo-\d+\.(png|txt)$/.test(f) && !names.has(f)) rmSync(join(dir, f));
  for (const [i, s] of specs.entries()) {
    const png = await sharp(demoPixels(s, i, set), { raw: { width: s.width, height: s.height, channels: 3 } }).png().toBuffer();
    // Caption first: a folder never shows an image without its caption, even if this is cut short.
    writeFileSync(join(dir, s.name.replace(/\.png$/, '.txt')), `${s.caption}\n`);
    const tmp = join(dir, `.${s.name}.tmp-${process.pid}`);
    writeFileSync(tmp, png);
    renameSync(tmp, join(dir, s.name));
  }
  return dir;
}
