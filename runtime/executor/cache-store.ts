/**
 * Where cached node outputs live between runs: an LRU bounded by bytes, not entries, because one
 * checkpoint weighs as much as ten thousand conditioning tensors.
 */

export type SizeOf = (value: unknown) => number;

interface Sized {
  byteSize(): number;
}

function hasByteSize(value: object): value is Sized {
  return typeof (value as Partial<Sized>).byteSize === 'function';
}

/**
 * Best-effort bytes held by a value: `byteSize()` when the value knows (models, tensors on a device),
 * typed-array lengths otherwise, structure walked once per object so shared parts count once.
 */
export function estimateSize(value: unknown, seen: Set<object> = new Set()): number {
  switch (typeof value) {
    case 'string':
      return 16 + value.length * 2;
    case 'number':
    case 'boolean':
    case 'bigint':
    case 'symbol':
      return 8;
    case 'undefined':
    case 'function':
      return 0;
  }
  if (value === null) return 0;
  const obj = value as object;
  if (seen.has(obj)) return 0;
  seen.add(obj);
  if (hasByteSize(obj)) return Math.max(0, Number(obj.byteSize()) || 0);
  if (obj instanceof ArrayBuffer || obj instanceof SharedArrayBuffer) return obj.byteLength;
  if (ArrayBuffer.isView(obj)) return obj.byteLength;
  let total = 32;
  if (obj instanceof Map) {
    for (const [k, v] of obj) total += estimateSize(k, seen) + estimateSize(v, seen);
  } else if (obj instanceof Set || Array.isArray(obj)) {
    for (const v of obj) total += estimateSize(v, seen);
  } else {
    for (const [k, v] of Object.entries(obj)) total += 16 + k.length * 2 + estimateSize(v, seen);
  }
  return total;
}

export interface CacheStats {
  entries: number;
  bytes: number;
  budgetBytes: number;
  hits: number;
  misses: number;
  evictions: number;
}

export interface LruCacheOptions<V> {
  budgetBytes: number;
  onEvict?(key: string, value: V): void;
}

export class LruCacheStore<V> {
  // Map iteration order is insertion order: re-inserting on use keeps the least recent first.
  private readonly entries = new Map<string, { value: V; size: number }>();
  private total = 0;
  private hits = 0;
  private misses = 0;
  private evictions = 0;
  readonly budgetBytes: number;
  private readonly onEvict?: (key: string, value: V) => void;

  constructor(options: LruCacheOptions<V>) {
    if (!(options.budgetBytes >= 0)) throw new RangeError('budgetBytes must be >= 0');
    this.budgetBytes = options.budgetBytes;
    this.onEvict = options.onEvict;
  }

  /** Marks the entry as just used. */
  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  /** Looks without counting as a use. */
  peek(key: string): V | undefined {
    return this.entries.get(key)?.value;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /**
   * Stores a value, evicting least recently used entries until the budget holds. A value larger than
   * the whole budget is not kept (returns false): holding it would mean holding nothing else.
   */
  set(key: string, value: V, size: number): boolean {
    this.delete(key);
    if (size > this.budgetBytes) return false;
    this.entries.set(key, { value, size });
    this.total += size;
    for (const [oldKey, old] of this.entries) {
      if (this.total <= this.budgetBytes) break;
      this.entries.delete(oldKey);
      this.total -= old.size;
      this.evictions++;
      this.onEvict?.(oldKey, old.value);
    }
    return true;
  }

  delete(key: string): boolean {
    const entry = this.entries.get(key);
    if (!entry) return false;
    this.entries.delete(key);
    this.total -= entry.size;
    return true;
  }

  clear(): void {
    this.entries.clear();
    this.total = 0;
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  get bytes(): number {
    return this.total;
  }

  get size(): number {
    return this.entries.size;
  }

  stats(): CacheStats {
    return { entries: this.entries.size, bytes: this.total, budgetBytes: this.budgetBytes, hits: this.hits, misses: this.misses, evictions: this.evictions };
  }
}
