import type { UiOutput } from '../nodes-api/spec.js';
import { computeCacheKeys, evaluateChangeTokens } from './cache-key.js';
import type { LruCacheStore } from './cache-store.js';
import { compareIds, reachable, upstreamIds, type ValidatedGraph } from './graph.js';

/** What the store keeps per node: its output tuple and, for nodes that show something, the UI part. */
export interface CacheEntry {
  readonly outputs: readonly unknown[];
  readonly ui?: UiOutput;
}

export interface RunPlan {
  readonly keys: ReadonlyMap<string, string>;
  /** Nodes the targets depend on whose outputs were in the store at planning time. */
  readonly cached: string[];
  /** Store entries taken out now, so an eviction later in the run cannot pull them from under a consumer. */
  readonly hits: ReadonlyMap<string, CacheEntry>;
  /** Nodes to execute, dependencies first. */
  readonly order: string[];
}

/**
 * Decides what a run executes. Walking up from the targets stops at every cache hit, so only nodes
 * whose key is new (their own values or something upstream changed) run. The order follows ComfyUI:
 * repeatedly finish the output that needs the fewest pending nodes, depth-first in input order, so
 * the first result appears as early as possible and ties break by id for determinism.
 */
export async function planRun(graph: ValidatedGraph, targets: readonly string[], store: LruCacheStore<CacheEntry>): Promise<RunPlan> {
  const upstream = (id: string) => upstreamIds(graph.nodes.get(id)!);
  const closure = [...reachable(targets, upstream)].sort(compareIds);
  const tokens = await evaluateChangeTokens(graph, closure);
  const keys = computeCacheKeys(graph, closure, tokens);
  const cached = closure.filter((id) => store.has(keys.get(id)!));

  const hits = new Map<string, CacheEntry>();
  const needed = new Set<string>();
  const visit = (id: string): void => {
    if (hits.has(id) || needed.has(id)) return;
    const entry = store.get(keys.get(id)!);
    if (entry) {
      hits.set(id, entry);
      return;
    }
    needed.add(id);
    for (const up of upstream(id)) visit(up);
  };
  for (const target of targets) visit(target);

  const scheduled = new Set<string>();
  const order: string[] = [];
  const pendingFor = (target: string): string[] => {
    const out: string[] = [];
    const seen = new Set<string>();
    const walk = (id: string): void => {
      if (seen.has(id) || scheduled.has(id) || !needed.has(id)) return;
      seen.add(id);
      for (const up of upstream(id)) walk(up);
      out.push(id);
    };
    walk(target);
    return out;
  };
  const remaining = [...targets];
  while (remaining.length > 0) {
    const ranked = remaining.map((t) => ({ t, pending: pendingFor(t) }));
    ranked.sort((a, b) => a.pending.length - b.pending.length || compareIds(a.t, b.t));
    const { t, pending } = ranked[0];
    remaining.splice(remaining.indexOf(t), 1);
    for (const id of pending) {
      scheduled.add(id);
      order.push(id);
    }
  }
  return { keys, cached, hits, order };
}
