/**
 * Parsed adapters, kept across node runs. Changing alpha or a LoRA strength in the editor re-runs the loader
 * node; without this it would re-read and re-parse the files, make new patch objects, and so miss every
 * cached LoRA product (keyed by patch) and leave the old ones to crowd the product cache. Entries are keyed by
 * file path + content fingerprint + the layout of the checkpoint the adapter was resolved against, so a
 * rewritten file is parsed again and the same file on another checkpoint of the same layout is not.
 */
import { createHash } from 'node:crypto';
import type { KeyShapeTable } from '../adapters/arch-tables.js';
import { parseLora, type LoraPatch, type ParsedLora } from '../adapters/lora-format.js';
import { loadResAdapter, type ResAdapter, type ResAdapterFiles } from '../adapters/resadapter.js';
import { fileFingerprint } from '../safetensors/fingerprint.js';

const signatures = new WeakMap<object, string>();

/** Digest of a key→shape table: two checkpoints of one layout share it. */
export function tableSignature(table: KeyShapeTable): string {
  const asObject = table as object;
  let sig = signatures.get(asObject);
  if (!sig) {
    const h = createHash('sha256');
    const entries = [...table];
    for (const [k, shape] of entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) h.update(`${k}:${shape.join('x')};`);
    sig = h.digest('hex').slice(0, 16);
    signatures.set(asObject, sig);
  }
  return sig;
}

function patchBytes(patches: readonly LoraPatch[]): number {
  return patches.reduce((n, p) => n + p.up.byteLength + p.down.byteLength + (p.mid?.byteLength ?? 0), 0);
}

/** Least-recently-used parsed adapters, bounded by the bytes of their tensors. */
export class ParsedAdapterCache {
  private readonly entries = new Map<string, { value: unknown; bytes: number }>();
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(readonly budgetBytes: number) {}

  get sizeBytes(): number {
    return this.bytes;
  }

  get size(): number {
    return this.entries.size;
  }

  get<T>(key: string, compute: () => T, bytesOf: (v: T) => number): T {
    const hit = this.entries.get(key);
    if (hit) {
      this.hits++;
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit.value as T;
    }
    this.misses++;
    const value = compute();
    const bytes = bytesOf(value);
    if (bytes <= this.budgetBytes) {
      this.entries.set(key, { value, bytes });
      this.bytes += bytes;
      for (const [k, e] of this.entries) {
        if (this.bytes <= this.budgetBytes) break;
        this.entries.delete(k);
        this.bytes -= e.bytes;
      }
    }
    return value;
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}

function budgetFromEnv(): number {
  const mb = Number(process.env.RESFLOW_ADAPTER_CACHE_MB);
  // 512 MiB: the SD1.5 ResAdapter (~30 MB) and a handful of full-size style LoRAs.
  return (Number.isFinite(mb) && mb >= 0 ? mb : 512) * 1024 * 1024;
}

export const sharedAdapterCache = new ParsedAdapterCache(budgetFromEnv());

/** parseLora for a file, reusing the parse while the file's content and the checkpoint layout are the same. */
export function cachedLora(path: string, table: KeyShapeTable, cache: ParsedAdapterCache = sharedAdapterCache): ParsedLora {
  const key = `lora\0${path}\0${fileFingerprint(path)}\0${tableSignature(table)}`;
  return cache.get(key, () => parseLora(path, table), (v) => patchBytes(v.patches));
}

/** loadResAdapter for files, reusing the parse while both files' contents and the checkpoint layout are the same. */
export function cachedResAdapter(files: ResAdapterFiles, table: KeyShapeTable, cache: ParsedAdapterCache = sharedAdapterCache): ResAdapter {
  const norm = files.norm ? `${files.norm}\0${fileFingerprint(files.norm)}` : '-';
  const key = `resadapter\0${files.lora}\0${fileFingerprint(files.lora)}\0${norm}\0${tableSignature(table)}`;
  const normBytes = (a: ResAdapter) => [...a.norms.values()].reduce((n, v) => n + v.byteLength, 0);
  return cache.get(key, () => loadResAdapter(files, table), (v) => patchBytes(v.patches) + normBytes(v));
}
