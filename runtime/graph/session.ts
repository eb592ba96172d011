import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { homedir, totalmem } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Graph } from './ir.js';
import { lowerToOnnx, type LowerOptions, type PlannedWeight } from './compile.js';
import { createOnDevice, deviceFor, portableLowering, type ModelRole } from './devices.js';
import { encodeModel } from '../onnx/model.js';
import { bakedBytes as bakedBytesOf, laidOutTensors, tensorBytes, type LaidOutTensor } from './weight-tensors.js';

export { applyLayout } from './weight-tensors.js';
import { precisionFor } from './precision.js';
import { hasSubpixel } from './subpixel.js';
import { enforceCacheBudget, pinCacheEntry, touchCacheEntry, unpinCacheEntry } from './disk-cache.js';

export interface TensorData {
  data: Float32Array | Int32Array | BigInt64Array;
  dims: readonly number[];
}

export interface CompileOptions extends LowerOptions {
  /** Above this many weight bytes, weights go to an external file in the cache dir (protobuf caps at 2 GiB). */
  inlineLimitBytes?: number;
  cacheDir?: string;
  /** ORT intra-op threads; default: the process setting (setSessionThreads), else ORT's choice (all cores). */
  threads?: number;
  /** The pipeline part this session serves: picks its device under the process's device policy. */
  role?: ModelRole;
}

let defaultThreads: number | undefined;

/** Process-wide intra-op thread count (a farm worker sharing a machine with others sets 1). */
export function setSessionThreads(threads: number | undefined): void {
  defaultThreads = threads;
}

export function defaultCacheDir(): string {
  return process.env.RESFLOW_CACHE_DIR ?? join(homedir(), '.cache', 'resflow');
}

/** Stable content hash of a graph: structure, weight identities (not their bytes) and constants. */
export function graphHash(graph: Graph, opts: LowerOptions = {}): string {
  const h = createHash('sha256');
  // int8Lowering counts changes to which layers int8 quantises, so cached int8 graphs rebuild; fp32 keys stay put.
  h.update(JSON.stringify({ v: 2, opts: { opset: opts.opset ?? 21, fused: opts.fusedAttention ?? true, ...(opts.portable ? { portable: true } : {}), ...(opts.precision === 'int8' && !opts.portable ? { precision: 'int8', int8Lowering: 2 } : {}), ...(opts.subpixel !== false && hasSubpixel(graph, { dispatch: !opts.portable }) ? { subpixel: true } : {}) } }));
  h.update(JSON.stringify(graph.values));
  h.update(JSON.stringify(graph.nodes));
  h.update(JSON.stringify(graph.inputs));
  h.update(JSON.stringify(graph.outputs));
  h.update(JSON.stringify(graph.weights.map((w) => [w.value, w.name, w.source.key, w.overridable])));
  for (const c of graph.consts) {
    h.update(String(c.value));
    h.update(new Uint8Array(c.data.buffer, c.data.byteOffset, c.data.byteLength));
  }
  return h.digest('hex').slice(0, 32);
}

/**
 * A compiled graph: an ORT session plus the default values of its overridable weights. Under memory pressure
 * the process-wide budget may unload an idle session's ORT state; the next run reopens it (from the cached
 * ONNX files), so holders never see a dead session.
 */
export class CompiledSession {
  private ortSession: ort.InferenceSession | null;
  private reopening: Promise<ort.InferenceSession> | null = null;
  private active = 0;
  lastUsed = performance.now();

  constructor(
    ortSession: ort.InferenceSession,
    readonly hash: string,
    readonly weights: PlannedWeight[],
    /** Laid-out base values of overridable weights, loaded when a run first needs one (not when overridden). */
    private defaults: Map<string, LaidOutTensor[]>,
    readonly createSeconds: number,
    /** Bytes of weights the ORT session holds (what unloading it frees). */
    readonly weightBytes: number = 0,
    private readonly reopen: () => Promise<ort.InferenceSession> = () => Promise.reject(new Error('session cannot be reopened')),
    /** Called once the ORT state is freed (lets the disk cache evict this session's files again). */
    private readonly onUnload: () => void = () => {},
    /** Loads one overridable weight's default (laid out as the session feeds it). */
    private readonly loadDefault: (w: PlannedWeight) => LaidOutTensor[] = () => {
      throw new Error('this session has no overridable weights');
    },
  ) {
    this.ortSession = ortSession;
  }

  /** The live ORT session (throws while unloaded: use `run`, which reopens). */
  get session(): ort.InferenceSession {
    if (!this.ortSession) throw new Error(`session ${this.hash} is unloaded`);
    return this.ortSession;
  }

  get loaded(): boolean {
    return this.ortSession !== null;
  }

  /** Bytes of default (base) values held for overridable weights; 0 while unloaded. */
  get defaultBytes(): number {
    let n = 0;
    for (const parts of this.defaults.values()) for (const d of parts) n += d.data.byteLength;
    return n;
  }

  get busy(): boolean {
    return this.active > 0;
  }

  /** Frees the ORT state if idle; returns whether it did. */
  async unload(): Promise<boolean> {
    if (this.active > 0 || !this.ortSession) return false;
    const s = this.ortSession;
    this.ortSession = null;
    await s.release();
    // An unloaded session keeps nothing big: its default adapter-target weights go too.
    this.defaults.clear();
    this.onUnload();
    return true;
  }

  private async live(): Promise<ort.InferenceSession> {
    if (this.ortSession) return this.ortSession;
    this.reopening ??= this.reopen().then((s) => {
      this.ortSession = s;
      this.reopening = null;
      return s;
    });
    const s = await this.reopening;
    await enforceBudget(this);
    return s;
  }

  // Override arrays are immutable per adapter state, so their layout (a transpose, or int8 codes) is computed
  // once, not per step.
  private layoutCache = new WeakMap<Float32Array, LaidOutTensor[]>();

  private laidOut(data: Float32Array, w: PlannedWeight): LaidOutTensor[] {
    let t = this.layoutCache.get(data);
    if (!t) this.layoutCache.set(data, (t = laidOutTensors(w, data)));
    return t;
  }

  private baseValue(w: PlannedWeight): LaidOutTensor[] {
    let t = this.defaults.get(w.onnxName);
    if (!t) this.defaults.set(w.onnxName, (t = this.loadDefault(w)));
    return t;
  }

  /** Names of weights that can be replaced per run (in IR names). */
  overridableNames(): string[] {
    return this.weights.filter((w) => w.overridable).map((w) => w.irName);
  }

  /**
   * Runs the graph. `overrides` maps IR weight names to replacement data in PyTorch layout (e.g. merged
   * LoRA weights); missing overridable weights use the base values.
   */
  async run(feeds: Record<string, TensorData>, overrides?: ReadonlyMap<string, Float32Array>): Promise<Record<string, TensorData>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = toOrt(t);
    for (const w of this.weights) {
      if (!w.overridable) continue;
      const over = overrides?.get(w.irName);
      for (const t of over ? this.laidOut(over, w) : this.baseValue(w)) {
        ortFeeds[t.name] = t.data instanceof Int8Array ? new ort.Tensor('int8', t.data, t.dims) : new ort.Tensor('float32', t.data, t.dims);
      }
    }
    this.active++;
    try {
      const session = await this.live();
      const res = await session.run(ortFeeds);
      const out: Record<string, TensorData> = {};
      for (const name of session.outputNames) {
        const t = res[name]!;
        out[name] = { data: t.data as Float32Array, dims: t.dims };
      }
      return out;
    } finally {
      this.active--;
      this.lastUsed = performance.now();
    }
  }
}

function toOrt(t: TensorData): ort.Tensor {
  if (t.data instanceof Float32Array) return new ort.Tensor('float32', t.data, t.dims);
  if (t.data instanceof Int32Array) return new ort.Tensor('int32', t.data, t.dims);
  return new ort.Tensor('int64', t.data, t.dims);
}

const sessionCache = new Map<string, Promise<CompiledSession>>();
const built = new Map<string, CompiledSession>();

/**
 * Bytes of model weights kept open in ORT across all sessions: RESFLOW_SESSION_BUDGET_MB, else 60% of RAM.
 * Beyond it the least recently used idle sessions are unloaded (their ONNX files stay cached on disk).
 */
export function sessionBudgetBytes(): number {
  const mb = Number(process.env.RESFLOW_SESSION_BUDGET_MB);
  return Number.isFinite(mb) && mb > 0 ? mb * 2 ** 20 : 0.6 * totalmem();
}

async function enforceBudget(keep: CompiledSession): Promise<void> {
  const open = [...built.values()].filter((s) => s.loaded);
  let total = open.reduce((n, s) => n + s.weightBytes, 0);
  const budget = sessionBudgetBytes();
  for (const s of open.sort((a, b) => a.lastUsed - b.lastUsed)) {
    if (total <= budget) break;
    if (s === keep) continue;
    if (await s.unload()) total -= s.weightBytes;
  }
}

/** Open sessions and the weight bytes they hold (for /system_stats and tests). */
export function sessionStats(): { sessions: number; loaded: number; weightBytes: number; budgetBytes: number } {
  const all = [...built.values()];
  const loaded = all.filter((s) => s.loaded);
  return { sessions: all.length, loaded: loaded.length, weightBytes: loaded.reduce((n, s) => n + s.weightBytes, 0), budgetBytes: sessionBudgetBytes() };
}

/** Where a compiled model's files live in the disk cache. */
const compiledDir = (cacheDir: string, hash: string) => join(cacheDir, 'onnx', hash);

function resolvedOptions(requested: CompileOptions): CompileOptions {
  return {
    ...requested,
    portable: requested.portable ?? portableLowering(deviceFor(requested.role)),
    precision: requested.precision ?? precisionFor(requested.role),
    // RESFLOW_SUBPIXEL=0 keeps upsample → conv in its plain form (benches time both; a fallback if a provider misbehaves).
    subpixel: requested.subpixel ?? process.env.RESFLOW_SUBPIXEL !== '0',
  };
}

/**
 * Whether compiling `graph` would find a ready session (in this process, or its compiled files in the disk
 * cache), so no weight of it needs to be read. Small models (kept in memory only) are never on disk.
 */
export function isCompiled(graph: Graph, requested: CompileOptions = {}): boolean {
  const opts = resolvedOptions(requested);
  const hash = graphHash(graph, opts);
  return sessionCache.has(hash) || existsSync(join(compiledDir(opts.cacheDir ?? defaultCacheDir(), hash), 'model.onnx'));
}

/** Compiles (or reuses) an ORT session for the graph; identical graphs share one session per process. */
export function compileGraph(graph: Graph, requested: CompileOptions = {}): Promise<CompiledSession> {
  const opts = resolvedOptions(requested);
  const hash = graphHash(graph, opts);
  let p = sessionCache.get(hash);
  if (!p) {
    p = buildSession(graph, hash, opts).then(async (s) => {
      built.set(hash, s);
      await enforceBudget(s);
      return s;
    });
    sessionCache.set(hash, p);
    p.catch(() => sessionCache.delete(hash));
  }
  return p;
}

/** Drops cached sessions (e.g. when a model is evicted from the executor's cache). */
export async function releaseSession(hash: string): Promise<void> {
  const p = sessionCache.get(hash);
  sessionCache.delete(hash);
  built.delete(hash);
  if (p) await (await p).unload();
}

async function buildSession(graph: Graph, hash: string, opts: CompileOptions): Promise<CompiledSession> {
  const t0 = performance.now();
  const lowered = lowerToOnnx(graph, opts);
  const byValue = new Map(graph.weights.map((w) => [w.value, w]));
  const loadDefault = (w: PlannedWeight) => laidOutTensors(w, byValue.get(w.value)!.source.load());
  const baked = lowered.weights.filter((w) => !w.overridable);
  const bakedBytes = baked.reduce((s, w) => s + bakedBytesOf(w.layout), 0);
  const sessionOptions: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all' };
  const threads = opts.threads ?? defaultThreads;
  if (threads) sessionOptions.intraOpNumThreads = threads;
  const device = deviceFor(opts.role);
  const create = (source: Uint8Array | string) => createOnDevice((o) => (typeof source === 'string' ? ort.InferenceSession.create(source, o) : ort.InferenceSession.create(source, o)), sessionOptions, device).then((d) => d.session);
  let open: () => Promise<ort.InferenceSession>;
  let onUnload = () => {};
  if (bakedBytes <= (opts.inlineLimitBytes ?? 256 * 1024 * 1024)) {
    // Small models live in memory only; reopening lowers and loads them again from their sources.
    open = () => {
      const l = lowerToOnnx(graph, opts);
      for (const w of baked) {
        for (const t of laidOutTensors(w, byValue.get(w.value)!.source.load())) {
          const { dataType, bytes } = tensorBytes(t);
          l.model.graph.initializers.push({ name: t.name, dataType, dims: t.dims, raw: bytes });
        }
      }
      return create(encodeModel(l.model));
    };
  } else {
    const cacheDir = opts.cacheDir ?? defaultCacheDir();
    const dir = compiledDir(cacheDir, hash);
    const modelPath = join(dir, 'model.onnx');
    open = async () => {
      // Pinned while open: the budget below (and other sessions' budgets) never evict what a session uses.
      pinCacheEntry(hash);
      try {
        // The cache folder may have been cleaned since: write it again from the sources.
        if (!existsSync(modelPath)) writeExternalModel(dir, lowerToOnnx(graph, opts), baked, byValue);
        touchCacheEntry(dir);
        const s = await create(modelPath);
        enforceCacheBudget(cacheDir);
        return s;
      } catch (e) {
        unpinCacheEntry(hash);
        throw e;
      }
    };
    onUnload = () => unpinCacheEntry(hash);
  }
  const session = await open();
  return new CompiledSession(session, hash, lowered.weights, new Map(), (performance.now() - t0) / 1000, bakedBytes, open, onUnload, loadDefault);
}

/**
 * Streams weights one tensor at a time into `weights.bin` (page-aligned so ORT can map them), then writes the
 * model that points at it. Both land under temp names and are renamed, so a crash leaves no half cache entry.
 */
function writeExternalModel(
  dir: string,
  lowered: ReturnType<typeof lowerToOnnx>,
  baked: PlannedWeight[],
  byValue: Map<number, Graph['weights'][number]>,
): void {
  mkdirSync(dir, { recursive: true });
  const tmpBin = join(dir, `weights.bin.tmp-${process.pid}`);
  const fd = openSync(tmpBin, 'w');
  let offset = 0;
  const ALIGN = 4096;
  try {
    for (const w of baked) {
      for (const t of laidOutTensors(w, byValue.get(w.value)!.source.load())) {
        const { dataType, bytes } = tensorBytes(t);
        const pad = (ALIGN - (offset % ALIGN)) % ALIGN;
        if (pad) {
          writeSync(fd, new Uint8Array(pad));
          offset += pad;
        }
        let done = 0;
        while (done < bytes.byteLength) done += writeSync(fd, bytes, done, bytes.byteLength - done);
        lowered.model.graph.initializers.push({ name: t.name, dataType, dims: t.dims, external: { location: 'weights.bin', offset, length: bytes.byteLength } });
        offset += bytes.byteLength;
      }
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmpBin, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmpBin, join(dir, 'weights.bin'));
  const tmpModel = join(dir, `model.onnx.tmp-${process.pid}`);
  writeFileSync(tmpModel, encodeModel(lowered.model));
  renameSync(tmpModel, join(dir, 'model.onnx'));
}
