import type { UiOutput } from '../nodes-api/spec.js';
import type { ApiPrompt } from '../workflow/api-schema.js';

/** ComfyUI's queue item: `[number, prompt_id, prompt, extra_data, outputs_to_execute]`. */
export type QueueTuple = [number, string, ApiPrompt, Record<string, unknown>, string[]];

export interface HistoryStatus {
  status_str: 'success' | 'error';
  completed: boolean;
  /** `[event type, payload]` of the run's execution_* events, as ComfyUI records them. */
  messages: [string, Record<string, unknown>][];
}

export interface HistoryEntry {
  prompt: QueueTuple;
  outputs: Record<string, UiOutput>;
  status: HistoryStatus;
  meta: Record<string, { node_id: string; display_node: string; parent_node: null; real_node_id: string }>;
}

/** Finished prompts in completion order, oldest dropped past `limit` (ComfyUI keeps 10000). */
export class HistoryStore {
  private readonly entries = new Map<string, HistoryEntry>();

  constructor(private readonly limit = 1000) {}

  set(promptId: string, entry: HistoryEntry): void {
    this.entries.delete(promptId);
    this.entries.set(promptId, entry);
    while (this.entries.size > this.limit) this.entries.delete(this.entries.keys().next().value!);
  }

  get(promptId: string): HistoryEntry | undefined {
    return this.entries.get(promptId);
  }

  /** ComfyUI's get_history: with only `maxItems`, the most recent ones; `offset` counts from the oldest. */
  list(maxItems?: number, offset?: number): Record<string, HistoryEntry> {
    const all = [...this.entries];
    let start = offset ?? -1;
    if (start < 0) start = maxItems !== undefined ? Math.max(0, all.length - maxItems) : 0;
    const end = maxItems !== undefined ? start + maxItems : all.length;
    return Object.fromEntries(all.slice(start, end));
  }

  delete(ids: readonly string[]): void {
    for (const id of ids) this.entries.delete(id);
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
