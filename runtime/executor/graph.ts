import type { NodeDefinition } from '../nodes-api/registry.js';
import type { ApiPrompt } from '../workflow/api-schema.js';

export interface LinkRef {
  readonly node: string;
  readonly slot: number;
}

export type WidgetValue = string | number | boolean;

/** A prompt node after validation: its type resolved, widget values coerced, links separated from literals. */
export interface GraphNode {
  readonly id: string;
  /** As written in the prompt (may be an alias); events and errors echo it back. */
  readonly classType: string;
  readonly def: NodeDefinition;
  readonly title?: string;
  readonly widgets: Readonly<Record<string, WidgetValue>>;
  readonly links: Readonly<Record<string, LinkRef>>;
}

/** What the executor accepts: only produced by `validatePrompt`, so everything in it has been checked. */
export interface ValidatedGraph {
  readonly nodes: ReadonlyMap<string, GraphNode>;
  /** Output nodes whose whole upstream validated, in id order. */
  readonly outputs: readonly string[];
  /** The prompt as submitted, for nodes that ask for the hidden PROMPT input. */
  readonly prompt: ApiPrompt;
}

/** Numeric ids in numeric order, anything else after them by string: the order ComfyUI users expect. */
export function compareIds(a: string, b: string): number {
  const na = /^\d+$/.test(a) ? Number(a) : NaN;
  const nb = /^\d+$/.test(b) ? Number(b) : NaN;
  if (!Number.isNaN(na) && !Number.isNaN(nb)) return na - nb || (a < b ? -1 : a > b ? 1 : 0);
  if (!Number.isNaN(na)) return -1;
  if (!Number.isNaN(nb)) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

export type Edges = (id: string) => Iterable<string>;

/** Every node reachable from `roots` by following `edges` (roots included). */
export function reachable(roots: Iterable<string>, edges: Edges): Set<string> {
  const seen = new Set<string>();
  const stack = [...roots];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    for (const next of edges(id)) if (!seen.has(next)) stack.push(next);
  }
  return seen;
}

/**
 * The groups of nodes that sit on a cycle (Tarjan's strongly connected components, iterative so a
 * long chain cannot overflow the stack). A node linked to itself forms a group of one.
 */
export function findCycles(ids: Iterable<string>, edges: Edges): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  let counter = 0;

  for (const root of ids) {
    if (index.has(root)) continue;
    const work: { id: string; next: Iterator<string> }[] = [];
    const open = (id: string) => {
      index.set(id, counter);
      low.set(id, counter++);
      stack.push(id);
      onStack.add(id);
      work.push({ id, next: edges(id)[Symbol.iterator]() });
    };
    open(root);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      const step = frame.next.next();
      if (!step.done) {
        const to = step.value;
        if (!index.has(to)) open(to);
        else if (onStack.has(to)) low.set(frame.id, Math.min(low.get(frame.id)!, index.get(to)!));
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1].id;
        low.set(parent, Math.min(low.get(parent)!, low.get(frame.id)!));
      }
      if (low.get(frame.id) === index.get(frame.id)) {
        const group: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          group.push(member);
        } while (member !== frame.id);
        const selfLoop = group.length === 1 && [...edges(frame.id)].includes(frame.id);
        if (group.length > 1 || selfLoop) cycles.push(group.sort(compareIds));
      }
    }
  }
  return cycles;
}

/** Distinct upstream node ids of a validated node, in input order. */
export function upstreamIds(node: GraphNode): string[] {
  return [...new Set(Object.values(node.links).map((l) => l.node))];
}
