import { createHash, randomUUID } from 'node:crypto';
import type { GraphNode, ValidatedGraph } from './graph.js';

/**
 * Cache keys are content addresses: the same node type fed the same widget values and the same
 * upstream keys produces the same key, whatever its id or position. Computing keys is kept apart
 * from storing values so both can change independently (and keys can be tested without running).
 */

/** JSON with sorted object keys, so equal values always serialize the same way. */
export function stableStringify(value: unknown): string {
  if (value === undefined) return 'null';
  if (typeof value === 'bigint') return JSON.stringify(`${value}n`);
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableStringify(v)}`).join(',')}}`;
}

/**
 * Evaluates each node's `isChanged` (ComfyUI's IS_CHANGED) on its widget values. NaN, or a throw,
 * yields a fresh token, i.e. "always re-run": a node that cannot tell must not be served stale output.
 */
export async function evaluateChangeTokens(graph: ValidatedGraph, ids: Iterable<string>): Promise<Map<string, string>> {
  const tokens = new Map<string, string>();
  for (const id of ids) {
    const node = graph.nodes.get(id)!;
    const isChanged = node.def.spec.isChanged;
    if (!isChanged) continue;
    let token: string;
    try {
      const result = await isChanged.call(node.def.spec, { ...node.widgets });
      token = typeof result === 'number' && Number.isNaN(result) ? `always:${randomUUID()}` : stableStringify(result);
    } catch {
      token = `error:${randomUUID()}`;
    }
    tokens.set(id, token);
  }
  return tokens;
}

function ownsIdentity(node: GraphNode): boolean {
  // A node that sees its own id can behave differently per id, so two copies must not share a key.
  return Object.values(node.def.hidden).includes('UNIQUE_ID');
}

/** Keys for `ids` and everything upstream of them. */
export function computeCacheKeys(graph: ValidatedGraph, ids: Iterable<string>, changeTokens: ReadonlyMap<string, string> = new Map()): Map<string, string> {
  const keys = new Map<string, string>();
  const keyOf = (id: string): string => {
    const known = keys.get(id);
    if (known !== undefined) return known;
    const node = graph.nodes.get(id);
    if (!node) throw new Error(`node ${id} is not in the validated graph`);
    const links = Object.entries(node.links)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, link]) => [name, keyOf(link.node), link.slot]);
    const material = stableStringify({
      type: node.def.name,
      widgets: node.widgets,
      links,
      changed: changeTokens.get(id),
      id: ownsIdentity(node) ? id : undefined,
    });
    const key = createHash('sha256').update(material).digest('hex');
    keys.set(id, key);
    return key;
  };
  for (const id of ids) keyOf(id);
  return keys;
}
