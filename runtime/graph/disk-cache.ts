/**
 * The compiled-model cache on disk (`<cache>/onnx/<graph hash>/model.onnx + weights.bin`) under a size budget.
 * Every graph variant (plain UNet, UNet with control inputs, each widened LoRA set, each checkpoint) writes a
 * full F32 weight file, several GB for SD1.5; without a budget a week of use fills a disk. Entries are evicted
 * least recently used first, and never one a session of this process has open (it may need to reopen it, and
 * it is what the user is working with).
 */
import { existsSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';

export interface CacheEntry {
  hash: string;
  dir: string;
  bytes: number;
  /** Last time a session was created or reopened from it (ms since epoch). */
  lastUsed: number;
}

const inUse = new Map<string, number>();

/** Marks an entry as used by an open session of this process (counted: several sessions may share it). */
export function pinCacheEntry(hash: string): void {
  inUse.set(hash, (inUse.get(hash) ?? 0) + 1);
}

export function unpinCacheEntry(hash: string): void {
  const n = (inUse.get(hash) ?? 0) - 1;
  if (n > 0) inUse.set(hash, n);
  else inUse.delete(hash);
}

export function isCacheEntryPinned(hash: string): boolean {
  return inUse.has(hash);
}

/** Records a use of the entry (its LRU position) as the folder's mtime, so it survives restarts. */
export function touchCacheEntry(dir: string): void {
  const now = new Date();
  try {
    utimesSync(dir, now, now);
  } catch {
    // a read-only cache still works, only its LRU order is stale
  }
}

function folderBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? folderBytes(p) : statSync(p).size;
  }
  return n;
}

/** The entries under `<cacheDir>/onnx`, most recently used first. */
export function listCacheEntries(cacheDir: string): CacheEntry[] {
  const root = join(cacheDir, 'onnx');
  if (!existsSync(root)) return [];
  const entries: CacheEntry[] = [];
  for (const e of readdirSync(root, { withFileTypes: true })) {
    if (!e.isDirectory()) continue;
    const dir = join(root, e.name);
    try {
      const lastUsed = statSync(dir).mtimeMs;
      entries.push({ hash: e.name, dir, bytes: folderBytes(dir), lastUsed });
    } catch {
      // removed while we looked
    }
  }
  return entries.sort((a, b) => b.lastUsed - a.lastUsed);
}

const GiB = 2 ** 30;

/**
 * The budget: RESFLOW_CACHE_BUDGET_GB when set, else three times the largest entry (so the model in use, its
 * ControlNet variant and one other model fit), and at least 4 GiB.
 */
export function cacheBudgetBytes(entries: readonly CacheEntry[]): number {
  const gb = Number(process.env.RESFLOW_CACHE_BUDGET_GB);
  if (process.env.RESFLOW_CACHE_BUDGET_GB && Number.isFinite(gb) && gb >= 0) return gb * GiB;
  const largest = entries.reduce((m, e) => Math.max(m, e.bytes), 0);
  return Math.max(4 * GiB, 3 * largest);
}

export interface EvictionReport {
  removed: CacheEntry[];
  kept: CacheEntry[];
  budgetBytes: number;
  /** Bytes kept (may exceed the budget when the pinned entries alone do). */
  bytes: number;
}

/** Removes least recently used entries until the cache fits its budget; pinned entries are never removed. */
export function enforceCacheBudget(cacheDir: string, budgetBytes?: number): EvictionReport {
  const entries = listCacheEntries(cacheDir);
  const budget = budgetBytes ?? cacheBudgetBytes(entries);
  let bytes = entries.reduce((n, e) => n + e.bytes, 0);
  const removed: CacheEntry[] = [];
  for (const e of [...entries].reverse()) {
    if (bytes <= budget) break;
    if (isCacheEntryPinned(e.hash)) continue;
    rmSync(e.dir, { recursive: true, force: true });
    removed.push(e);
    bytes -= e.bytes;
  }
  return { removed, kept: entries.filter((e) => !removed.includes(e)), budgetBytes: budget, bytes };
}

/** Removes every entry no open session of this process uses. */
export function clearCache(cacheDir: string): EvictionReport {
  return enforceCacheBudget(cacheDir, 0);
}
