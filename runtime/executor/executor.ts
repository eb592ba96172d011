import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { NodeContext, NodeReturn, PreviewImage, UiOutput } from '../nodes-api/spec.js';
import { estimateSize, LruCacheStore, type CacheStats, type SizeOf } from './cache-store.js';
import { formatValue, InterruptedError } from './errors.js';
import { ExecutorEvents, type ExecutorEvent, type ExecutorEventMap } from './events.js';
import { compareIds, upstreamIds, type GraphNode, type ValidatedGraph } from './graph.js';
import { planRun, type CacheEntry, type RunPlan } from './plan.js';

export const DEFAULT_CACHE_BUDGET_BYTES = 4 * 1024 ** 3;

export interface NodeLogEntry {
  promptId: string;
  nodeId: string;
  nodeType: string;
  args: unknown[];
}

export interface ExecutorOptions {
  /** Bytes of node outputs kept between runs (default 4 GiB); ignored when `store` is given. */
  cacheBudgetBytes?: number;
  /** How much a cached output weighs; defaults to `estimateSize` (which honours `byteSize()`). */
  sizeOf?: SizeOf;
  /** Share or inspect the store; otherwise the executor makes its own. */
  store?: LruCacheStore<CacheEntry>;
  log?: (entry: NodeLogEntry) => void;
  onListenerError?: (error: unknown, event: ExecutorEvent) => void;
}

export interface RunOptions {
  promptId?: string;
  /** Subset of the graph's valid outputs to produce; all of them by default. */
  outputs?: readonly string[];
  /** ComfyUI's extra_data; `extra_pnginfo` feeds the hidden EXTRA_PNGINFO input (the editor workflow for PNGs). */
  extraData?: { extra_pnginfo?: Record<string, unknown>; [key: string]: unknown };
  /** Aborts like `interrupt()`, for callers that own their own cancellation. */
  signal?: AbortSignal;
}

export type RunStatus = 'success' | 'error' | 'interrupted';

export interface RunResult {
  promptId: string;
  status: RunStatus;
  /** Nodes that ran in this run, in order. */
  executed: string[];
  /** Nodes whose outputs came from the cache. */
  cached: string[];
  /** UI outputs by node id (from executed and cached output nodes): what history shows. */
  outputs: Record<string, UiOutput>;
  /** Wall-clock milliseconds per executed node, failed node included. */
  timings: Record<string, number>;
  error?: ExecutorEventMap['execution_error'];
  interrupted?: ExecutorEventMap['execution_interrupted'];
}

type NodeOutcome =
  | { kind: 'done'; entry: CacheEntry }
  | { kind: 'interrupted' }
  | { kind: 'failed'; error: unknown; inputs: Record<string, unknown> };

function isUiOutput(value: unknown): value is UiOutput {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every(Array.isArray);
}

/** Accepts a bare output tuple, `{ ui, result }`, or nothing (output nodes without outputs). */
function normalizeReturn(node: GraphNode, returned: NodeReturn): CacheEntry {
  let outputs: readonly unknown[];
  let ui: UiOutput | undefined;
  if (returned === undefined || returned === null) outputs = [];
  else if (Array.isArray(returned)) outputs = returned;
  else if (typeof returned === 'object' && ('ui' in returned || 'result' in returned)) {
    if (returned.ui !== undefined && !isUiOutput(returned.ui)) throw new TypeError(`${node.def.name} returned a ui that is not an object of lists`);
    if (returned.result !== undefined && !Array.isArray(returned.result)) throw new TypeError(`${node.def.name} returned a result that is not an array`);
    outputs = returned.result ?? [];
    ui = returned.ui;
  } else throw new TypeError(`${node.def.name} returned ${typeof returned}; expected an array of outputs or { ui, result }`);
  const declared = node.def.outputs.length;
  if (outputs.length !== declared) throw new TypeError(`${node.def.name} returned ${outputs.length} output(s) but declares ${declared}`);
  return { outputs, ui };
}

function errorPayloadParts(error: unknown): { exception_message: string; exception_type: string; traceback: string[] } {
  if (error instanceof Error) {
    const frames = (error.stack ?? '').split('\n').slice(1).map((l) => l.trim()).filter(Boolean);
    return { exception_message: error.message, exception_type: error.name || error.constructor.name, traceback: frames };
  }
  return { exception_message: String(error), exception_type: typeof error, traceback: [] };
}

/**
 * Runs validated graphs. Outputs are cached by content key across runs, so re-queueing an unchanged
 * prompt executes nothing and editing one widget re-runs only that node and what depends on it.
 * Runs are serialized: a second `run` waits for the first. A failing node ends its run with an
 * `execution_error` but leaves the executor (and everything cached so far) ready for the next one.
 */
export class Executor {
  readonly events: ExecutorEvents;
  private readonly store: LruCacheStore<CacheEntry>;
  private readonly sizeOf: SizeOf;
  private readonly log: (entry: NodeLogEntry) => void;
  private tail: Promise<unknown> = Promise.resolve();
  private current?: AbortController;

  constructor(options: ExecutorOptions = {}) {
    this.events = new ExecutorEvents(options.onListenerError);
    this.store = options.store ?? new LruCacheStore<CacheEntry>({ budgetBytes: options.cacheBudgetBytes ?? DEFAULT_CACHE_BUDGET_BYTES });
    this.sizeOf = options.sizeOf ?? ((v) => estimateSize(v));
    this.log = options.log ?? ((e) => console.log(`[${e.nodeType} #${e.nodeId}]`, ...e.args));
  }

  on<K extends keyof ExecutorEventMap>(type: K, listener: (data: ExecutorEventMap[K]) => void): () => void {
    return this.events.on(type, listener);
  }

  run(graph: ValidatedGraph, options: RunOptions = {}): Promise<RunResult> {
    const result = this.tail.then(() => this.runNow(graph, options));
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** Stops the current run: the running node sees its signal abort, nothing after it starts. */
  interrupt(): boolean {
    if (!this.current || this.current.signal.aborted) return false;
    this.current.abort(new InterruptedError());
    return true;
  }

  get running(): boolean {
    return this.current !== undefined;
  }

  clearCache(): void {
    this.store.clear();
  }

  cacheStats(): CacheStats {
    return this.store.stats();
  }

  private async runNow(graph: ValidatedGraph, options: RunOptions): Promise<RunResult> {
    const promptId = options.promptId ?? randomUUID();
    const controller = new AbortController();
    this.current = controller;
    const signal = options.signal ? AbortSignal.any([controller.signal, options.signal]) : controller.signal;
    const result: RunResult = { promptId, status: 'success', executed: [], cached: [], outputs: {}, timings: {} };
    const emit = this.events.emit.bind(this.events);
    try {
      emit('execution_start', { prompt_id: promptId, timestamp: Date.now() });
      const wanted = options.outputs ? new Set(options.outputs) : undefined;
      const targets = graph.outputs.filter((id) => !wanted || wanted.has(id)).sort(compareIds);
      const plan = await planRun(graph, targets, this.store);
      result.cached = plan.cached;
      emit('execution_cached', { nodes: plan.cached, prompt_id: promptId, timestamp: Date.now() });
      for (const id of targets) {
        const ui = plan.hits.get(id)?.ui;
        if (!ui) continue;
        result.outputs[id] = ui;
        emit('executed', { node: id, display_node: id, output: ui, prompt_id: promptId });
      }
      await this.executePlan(graph, plan, targets, { promptId, signal, options, result });
      if (result.status === 'success') emit('execution_success', { prompt_id: promptId, timestamp: Date.now() });
      return result;
    } finally {
      if (this.current === controller) this.current = undefined;
      emit('executing', { node: null, prompt_id: promptId });
    }
  }

  private async executePlan(
    graph: ValidatedGraph,
    plan: RunPlan,
    targets: readonly string[],
    run: { promptId: string; signal: AbortSignal; options: RunOptions; result: RunResult },
  ): Promise<void> {
    const { promptId, signal, result } = run;
    const working = new Map<string, readonly unknown[]>();
    for (const [id, entry] of plan.hits) working.set(id, entry.outputs);
    // Drop each intermediate output once its last consumer in this run has read it.
    const consumers = new Map<string, number>();
    for (const id of plan.order) for (const up of upstreamIds(graph.nodes.get(id)!)) consumers.set(up, (consumers.get(up) ?? 0) + 1);
    const keep = new Set(targets);

    for (const id of plan.order) {
      const node = graph.nodes.get(id)!;
      if (signal.aborted) {
        this.reportInterrupted(node, run);
        return;
      }
      const outcome = await this.executeNode(graph, node, working, run);
      if (outcome.kind === 'interrupted') {
        this.reportInterrupted(node, run);
        return;
      }
      if (outcome.kind === 'failed') {
        result.status = 'error';
        result.error = {
          prompt_id: promptId,
          node_id: id,
          node_type: node.classType,
          executed: [...result.executed],
          ...errorPayloadParts(outcome.error),
          current_inputs: Object.fromEntries(Object.entries(outcome.inputs).map(([k, v]) => [k, [formatValue(v)]])),
          current_outputs: [...result.cached],
          timestamp: Date.now(),
        };
        this.events.emit('execution_error', result.error);
        return;
      }
      const { entry } = outcome;
      this.store.set(plan.keys.get(id)!, entry, this.sizeOf(entry.outputs) + (entry.ui ? this.sizeOf(entry.ui) : 0));
      working.set(id, entry.outputs);
      result.executed.push(id);
      for (const up of upstreamIds(node)) {
        const left = (consumers.get(up) ?? 1) - 1;
        consumers.set(up, left);
        if (left === 0 && !keep.has(up)) working.delete(up);
      }
      if (entry.ui) {
        result.outputs[id] = entry.ui;
        this.events.emit('executed', { node: id, display_node: id, output: entry.ui, prompt_id: promptId });
      }
    }
  }

  private reportInterrupted(node: GraphNode, run: { promptId: string; result: RunResult }): void {
    run.result.status = 'interrupted';
    run.result.interrupted = {
      prompt_id: run.promptId,
      node_id: node.id,
      node_type: node.classType,
      executed: [...run.result.executed],
      timestamp: Date.now(),
    };
    this.events.emit('execution_interrupted', run.result.interrupted);
  }

  private buildInputs(graph: ValidatedGraph, node: GraphNode, working: ReadonlyMap<string, readonly unknown[]>, options: RunOptions): Record<string, unknown> {
    const inputs: Record<string, unknown> = { ...node.widgets };
    for (const [name, link] of Object.entries(node.links)) {
      const outputs = working.get(link.node);
      if (!outputs) throw new Error(`internal: output of node ${link.node} is not available to ${node.id}`);
      inputs[name] = outputs[link.slot];
    }
    for (const [name, kind] of Object.entries(node.def.hidden)) {
      if (kind === 'PROMPT') inputs[name] = graph.prompt;
      else if (kind === 'EXTRA_PNGINFO') inputs[name] = options.extraData?.extra_pnginfo ?? null;
      else inputs[name] = node.id;
    }
    return inputs;
  }

  private async executeNode(
    graph: ValidatedGraph,
    node: GraphNode,
    working: ReadonlyMap<string, readonly unknown[]>,
    run: { promptId: string; signal: AbortSignal; options: RunOptions; result: RunResult },
  ): Promise<NodeOutcome> {
    const { promptId, signal } = run;
    this.events.emit('executing', { node: node.id, display_node: node.id, prompt_id: promptId });
    let inputs: Record<string, unknown> = {};
    const ctx: NodeContext = {
      nodeId: node.id,
      promptId,
      signal,
      progress: (value: number, max: number, preview?: PreviewImage, metrics?: Record<string, number>) => {
        if (signal.aborted) throw new InterruptedError();
        this.events.emit('progress', { value, max, prompt_id: promptId, node: node.id, ...(metrics ? { metrics } : {}) });
        if (preview) this.events.emit('preview_image', { prompt_id: promptId, node: node.id, display_node: node.id, image: preview });
      },
      log: (...args: unknown[]) => this.log({ promptId, nodeId: node.id, nodeType: node.classType, args }),
    };
    const started = performance.now();
    try {
      inputs = this.buildInputs(graph, node, working, run.options);
      const returned = await node.def.spec.execute.call(node.def.spec, inputs, ctx);
      return { kind: 'done', entry: normalizeReturn(node, returned) };
    } catch (error) {
      // Whatever a node throws once the run is aborted is the interruption surfacing, not a bug.
      if (signal.aborted || error instanceof InterruptedError) return { kind: 'interrupted' };
      return { kind: 'failed', error, inputs };
    } finally {
      run.result.timings[node.id] = performance.now() - started;
    }
  }
}
