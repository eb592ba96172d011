/**
 * Puts the shipped Shapes model where loaders look: assets/shapes/resflow-shapes.safetensors is copied to
 * models/checkpoints/ (and its ResAdapter, when shipped, to models/resadapters/), and its tokenizer folder
 * is written to models/tokenizers/resflow-shapes/. Copies are atomic and redone when the asset changes.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SHAPES_CHECKPOINT, SHAPES_RESADAPTER, SHAPES_TOKENIZER } from './arch.js';
import { writeShapesTokenizer } from './model-files.js';

export const SHAPES_ASSET_DIR = fileURLToPath(new URL('../../assets/shapes/', import.meta.url));
export const SHAPES_ASSET = join(SHAPES_ASSET_DIR, SHAPES_CHECKPOINT);
export const SHAPES_RESADAPTER_ASSET = join(SHAPES_ASSET_DIR, 'resadapter-shapes');

export interface ShapesPaths {
  checkpoint: string;
  tokenizer: string;
  /** Undefined when no trained ResAdapter is shipped. */
  resadapter?: string;
}

function stale(src: string, dst: string): boolean {
  if (!existsSync(dst)) return true;
  const a = statSync(src);
  const b = statSync(dst);
  return a.size !== b.size || a.mtimeMs > b.mtimeMs;
}

function copyAtomic(src: string, dst: string): void {
  const tmp = `${dst}.tmp-${process.pid}`;
  copyFileSync(src, tmp);
  renameSync(tmp, dst);
}

/** Provisions the Shapes model under `modelsDir`; throws naming the asset when the checkout lacks it. */
export function ensureShapesModel(modelsDir: string): ShapesPaths {
  if (!existsSync(SHAPES_ASSET)) throw new Error(`the ResFlow Shapes model is missing from this checkout (${SHAPES_ASSET}); run npm run train:shapes -- --export`);
  const checkpoint = join(modelsDir, 'checkpoints', SHAPES_CHECKPOINT);
  const tokenizer = join(modelsDir, 'tokenizers', SHAPES_TOKENIZER);
  mkdirSync(join(modelsDir, 'checkpoints'), { recursive: true });
  if (stale(SHAPES_ASSET, checkpoint)) copyAtomic(SHAPES_ASSET, checkpoint);
  if (!existsSync(join(tokenizer, 'vocab.json'))) writeShapesTokenizer(tokenizer);
  const out: ShapesPaths = { checkpoint, tokenizer };
  if (existsSync(SHAPES_RESADAPTER_ASSET)) {
    const dir = join(modelsDir, 'resadapters', SHAPES_RESADAPTER);
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(SHAPES_RESADAPTER_ASSET)) {
      if (stale(join(SHAPES_RESADAPTER_ASSET, f), join(dir, f))) copyAtomic(join(SHAPES_RESADAPTER_ASSET, f), join(dir, f));
    }
    out.resadapter = dir;
  }
  return out;
}
