/**
 * CheckpointSave: writes the effective weights of a MODEL / CLIP / VAE trio (merges and adapters applied)
 * as one single-file SD1.x checkpoint in the original LDM key layout, atomically (temp file + rename), so an
 * interrupted save never leaves a truncated model where a good one could be expected.
 */
import type { WeightSet } from '../models/weights.js';
import { writeSafetensorsStreaming, type StreamedTensor } from '../safetensors/writer.js';

export interface SavePart {
  weights: WeightSet;
  /** Merged adapter weights by full key of `weights`' file, if any. */
  overrides?: ReadonlyMap<string, Float32Array> | undefined;
  /** The key prefix this part gets in the saved file. */
  prefix: string;
}

const STORED = new Set(['F32', 'F16', 'BF16']);

export function checkpointTensors(parts: SavePart[]): StreamedTensor[] {
  const out: StreamedTensor[] = [];
  const seen = new Set<string>();
  for (const part of parts) {
    const w = part.weights;
    for (const name of w.names()) {
      const key = part.prefix + name;
      if (seen.has(key)) throw new Error(`CheckpointSave: two parts write "${key}"`);
      seen.add(key);
      const full = w.prefix + name;
      const info = w.file.info(full);
      // Integer buffers (position ids) and exotic dtypes are stored as float32, which every loader reads.
      const dtype = (STORED.has(info.dtype) ? info.dtype : 'F32') as StreamedTensor['dtype'];
      out.push({ name: key, dtype, shape: [...info.shape], produce: () => part.overrides?.get(full) ?? w.file.readFloat32(full) });
    }
  }
  return out;
}

export function saveCheckpoint(path: string, parts: SavePart[], metadata: Record<string, string> = {}): number {
  const tensors = checkpointTensors(parts);
  writeSafetensorsStreaming(path, tensors, metadata);
  return tensors.length;
}
