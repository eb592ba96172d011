// Textual-inversion embeddings as ComfyUI reads them (comfy/sd1_clip.py load_embed): the file found for
// `embedding:name`, the tensor an encoder takes from it, as float32 rows. Model files never run code: `.pt` /
// `.bin` go through the restricted unpickler.

import path from 'node:path';
import { SafetensorsFile } from '../safetensors/reader.js';
import { readTorchObject, type LoadedTensor, type TorchValue } from '../torchfile/torch-checkpoint.js';
import { findEmbeddingFile } from './embedding-files.js';
import type { EmbeddingLookup } from './prompt-weights.js';

/** The key an encoder looks for in an SDXL-style file: CLIP-L (also SD1.x) and OpenCLIP bigG. */
export type EmbeddingKey = 'clip_l' | 'clip_g';

/** One embedding as an encoder sees it: `rows` vectors of `width` floats, row-major. */
export interface EmbeddingVectors {
  file: string;
  rows: number;
  width: number;
  data: Float32Array;
}

function asVectors(file: string, shape: readonly number[], data: Float32Array): EmbeddingVectors {
  // A 1-D tensor [W] is one vector; anything higher is [..., W] flattened to rows.
  const width = shape.length === 0 ? 1 : shape[shape.length - 1]!;
  if (width <= 0 || data.length % width !== 0) throw new Error(`${file}: embedding tensor of shape [${shape.join(', ')}] is not a list of vectors`);
  return { file, rows: data.length / width, width, data };
}

function isTensor(v: TorchValue | undefined): v is LoadedTensor {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Map) && v.kind === 'tensor';
}

/** A1111 `.pt`: `string_to_param`'s first value; else the encoder's key; else the first tensor of the dict. */
function fromTorch(file: string, obj: TorchValue, key: EmbeddingKey): EmbeddingVectors {
  if (obj instanceof Map) {
    const s2p = obj.get('string_to_param');
    if (s2p instanceof Map) {
      const first = [...s2p.values()][0];
      if (isTensor(first)) return asVectors(file, first.shape, first.data);
      throw new Error(`${file}: 'string_to_param' holds no tensor`);
    }
    const own = obj.get(key);
    if (isTensor(own)) return asVectors(file, own.shape, own.data);
    const first = [...obj.values()][0];
    if (isTensor(first)) return asVectors(file, first.shape, first.data);
  }
  if (Array.isArray(obj)) {
    // The list-of-dicts form: every tensor whose width matches is kept, in order. The width is unknown here,
    // so the first tensor's width decides.
    const parts: LoadedTensor[] = [];
    for (const d of obj) if (d instanceof Map) for (const v of d.values()) if (isTensor(v)) parts.push(v);
    const width = parts[0]?.shape.at(-1);
    const kept = parts.filter((t) => t.shape.at(-1) === width);
    if (kept.length && width) {
      const data = new Float32Array(kept.reduce((n, t) => n + t.data.length, 0));
      let at = 0;
      for (const t of kept) (data.set(t.data, at), (at += t.data.length));
      return asVectors(file, [data.length / width, width], data);
    }
  }
  throw new Error(`${file}: no embedding tensor found (expected 'string_to_param', '${key}' or a dict of tensors)`);
}

/** Reads the vectors `key`'s encoder takes from an embedding file (safetensors, or a torch zip `.pt`/`.bin`). */
export function readEmbeddingFile(file: string, key: EmbeddingKey): EmbeddingVectors {
  if (file.toLowerCase().endsWith('.safetensors')) {
    const st = SafetensorsFile.open(file);
    // safetensors hands ComfyUI its tensors in key order; without the encoder's key the first one counts.
    const keys = st.keys().sort();
    const name = st.has(key) ? key : keys[0];
    if (name === undefined) throw new Error(`${file}: the embedding file holds no tensors`);
    return asVectors(file, st.info(name).shape, st.readFloat32(name));
  }
  return fromTorch(file, readTorchObject(file), key);
}

/** What an encoder's tokenization and encoding need: the lookup for the tokenizer and the vectors by name. */
export interface EncoderEmbeddings {
  lookup: EmbeddingLookup;
  /** Row `row` of the embedding the lookup named `name` (a float32 vector of that embedding's width). */
  vector(name: string, row: number): Float32Array;
}

/**
 * The embeddings folders of a runtime. Files are read on first use and kept (they are small); a file that
 * fails to load is reported through `onWarning` and treated as missing, as ComfyUI does.
 */
export class EmbeddingLibrary {
  private readonly loaded = new Map<string, EmbeddingVectors | null>();

  constructor(
    readonly dirs: readonly string[],
    private readonly onWarning: (message: string) => void = (m) => console.warn(m),
  ) {}

  /** Reports a warning (a missing file, dropped vectors) where this library's warnings go. */
  readonly warn = (message: string): void => this.onWarning(message);

  /** The file and vectors `name` resolves to for one encoder, or undefined when there is none. */
  resolve(name: string, key: EmbeddingKey): EmbeddingVectors | undefined {
    const file = findEmbeddingFile(this.dirs, name);
    if (!file) return undefined;
    const id = `${key}:${file}`;
    let v = this.loaded.get(id);
    if (v === undefined) {
      try {
        v = readEmbeddingFile(file, key);
      } catch (e) {
        this.onWarning(`error loading embedding, skipping loading: ${name} (${e instanceof Error ? e.message : String(e)})`);
        v = null;
      }
      this.loaded.set(id, v);
    }
    return v ?? undefined;
  }

  /** Lookup + vectors for one encoder; names handed to the tokenizer are `<key>:<absolute file>`. */
  forEncoder(key: EmbeddingKey): EncoderEmbeddings {
    return {
      lookup: (name) => {
        const v = this.resolve(name, key);
        return v ? { name: `${key}:${v.file}`, rows: v.rows } : undefined;
      },
      vector: (name, row) => {
        const v = this.loaded.get(name);
        if (!v || row < 0 || row >= v.rows) throw new Error(`embedding ${name.slice(key.length + 1)}: no row ${row}`);
        return v.data.subarray(row * v.width, (row + 1) * v.width);
      },
    };
  }

  /** The file name shown for a resolved embedding (for messages). */
  static fileOf(name: string): string {
    return path.basename(name.slice(name.indexOf(':') + 1));
  }
}
