/**
 * Files of the Shapes model: the deterministic initial checkpoint training starts from (random UNet and VAE,
 * the frozen random text encoder), its tokenizer folder, and the F16 export in the SD1.x single-file layout.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initTensor, writeSyntheticCheckpoint } from '../models/synthetic/generate.js';
import { sd1CheckpointKeyShapes } from '../models/synthetic/tables.js';
import { SafetensorsFile } from '../safetensors/index.js';
import { writeSafetensorsStreaming } from '../safetensors/writer.js';
import { shapesArch, SHAPES_HEADS, SHAPES_TOKENIZER } from './arch.js';
import { shapesMergesText, shapesTokenizerFiles } from './tokenizer.js';

export const SHAPES_MODEL_VERSION = '1';

export function shapesMetadata(): Record<string, string> {
  return { 'resflow.unet.num_heads': String(SHAPES_HEADS), 'resflow.tokenizer': SHAPES_TOKENIZER, 'resflow.shapes': SHAPES_MODEL_VERSION };
}

/**
 * Initial values: the generator's fan-in scaled normals, except the layers SD's own code zero-initialises
 * (each resnet's last conv, each transformer's proj_out, the UNet's output conv), so every residual branch
 * starts as the identity and the untrained UNet predicts zero.
 */
export function initialValue(name: string, shape: number[], seed: number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  if (/^model\.diffusion_model\.(.*\.out_layers\.3\.|.*\.proj_out\.|out\.2\.)/.test(name)) return new Float32Array(n);
  // The UNet's GroupNorms are named by position (in_layers.0, out_layers.0, out.0), not "norm", so the generic
  // initialiser would give them fan-in noise; a norm starts as the identity (γ 1, β 0) or its block starts dead.
  const groupNorm = /^model\.diffusion_model\.(.*\.(in|out)_layers\.0|out\.0)\.(weight|bias)$/.exec(name);
  if (groupNorm) return new Float32Array(n).fill(groupNorm[3] === 'weight' ? 1 : 0);
  return initTensor(name, shape, seed);
}

export function writeInitialCheckpoint(path: string, seed: number): void {
  writeSyntheticCheckpoint(path, sd1CheckpointKeyShapes(shapesArch()), {
    seed,
    dtype: 'F32',
    metadata: shapesMetadata(),
    values: (name, shape) => initialValue(name, shape, seed),
  });
}

export function writeShapesTokenizer(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const files = shapesTokenizerFiles();
  for (const [name, text] of [['vocab.json', JSON.stringify(files.vocab)], ['merges.txt', shapesMergesText(files)]] as const) {
    const tmp = join(dir, `.${name}.tmp-${process.pid}`);
    writeFileSync(tmp, text);
    renameSync(tmp, join(dir, name));
  }
}

/** The shipped file: every key of `base`, with `trained` (full keys) replacing what it holds, in F16. */
export function exportCheckpoint(path: string, base: SafetensorsFile, trained: ReadonlyMap<string, Float32Array>, metadata: Record<string, string>): void {
  writeSafetensorsStreaming(
    path,
    base.keys().map((name) => ({
      name,
      dtype: 'F16' as const,
      shape: base.info(name).shape,
      produce: () => trained.get(name) ?? base.readFloat32(name),
    })),
    { format: 'pt', ...shapesMetadata(), ...metadata },
  );
}
