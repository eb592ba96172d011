import type { UiOutput } from '../nodes-api/spec.js';
import type { ExecutorEvent } from '../executor/events.js';
import type { Executor, RunResult } from '../executor/executor.js';
import type { ValidatedGraph } from '../executor/graph.js';
import type { ApiPrompt } from '../workflow/api-schema.js';
import { HistoryStore, type HistoryEntry, type HistoryStatus, type QueueTuple } from './history.js';
import type { ServerQueue } from './server-queue.js';

export interface QueuedPrompt {
  /** Sort key: ComfyUI's counter, negated for `front`, or the client's own `number`. */
  number: number;
  promptId: string;
  prompt: ApiPrompt;
  extraData: Record<string, unknown>;
  outputs: string[];
  graph: ValidatedGraph;
}

interface Running {
  item: QueuedPrompt;
  messages: HistoryStatus['messages'];
  outputs: Record<string, UiOutput>;
  recorded: boolean;
}

const RECORDED_EVENTS = new Set(['execution_start', 'execution_cached', 'execution_success', 'execution_error', 'execution_interrupted']);

export function toTuple(item: QueuedPrompt): QueueTuple {
  return [item.number, item.promptId, item.prompt, item.extraData, item.outputs];
}

/**
 * The server's FIFO of validated prompts (lowest number first, so `front` jumps ahead) and its history.
 * One prompt runs at a time; a failed or interrupted run is recorded and the next one starts anyway.
 *
 * The queue listens to executor events itself and writes a prompt's history entry on its terminal
 * event, before listeners registered later (the websocket bridge) forward that event: a client that
 * fetches `/history/{id}` on `execution_success` always finds the entry.
 */
export class PromptQueue implements ServerQueue {
  readonly history: HistoryStore;
  private pending: { item: QueuedPrompt; seq: number }[] = [];
  private running?: Running;
  private counter = 0;
  private seq = 0;
  private pumping?: Promise<void>;
  private stopped = false;

  constructor(
    private readonly executor: Executor,
    private readonly onChange: () => void = () => {},
    historyLimit = 1000,
  ) {
    this.history = new HistoryStore(historyLimit);
    executor.events.onAny((event) => this.observe(event));
  }

  /** ComfyUI's `number`: increasing, negative for prompts pushed to the front. */
  nextNumber(front: boolean): number {
    const n = this.counter++;
    return front ? -n : n;
  }

  has(promptId: string): boolean {
    return this.running?.item.promptId === promptId || this.pending.some((p) => p.item.promptId === promptId);
  }

  enqueue(item: QueuedPrompt): void {
    if (this.stopped) throw new Error('the queue is stopped');
    this.pending.push({ item, seq: this.seq++ });
    this.pending.sort((a, b) => a.item.number - b.item.number || a.seq - b.seq);
    this.onChange();
    this.pumping ??= this.pump().finally(() => (this.pumping = undefined));
  }

  /** Pending and running prompts: what `queue_remaining` counts. */
  remaining(): number {
    return this.pending.length + (this.running ? 1 : 0);
  }

  snapshot(): { queue_running: QueueTuple[]; queue_pending: QueueTuple[] } {
    return {
      queue_running: this.running ? [toTuple(this.running.item)] : [],
      queue_pending: this.pending.map((p) => toTuple(p.item)),
    };
  }

  /** The prompt being executed, if any. */
  current(): QueuedPrompt | undefined {
    return this.running?.item;
  }

  ownerOf(promptId: string): string | undefined {
    const item = this.running?.item.promptId === promptId ? this.running.item : this.pending.find((p) => p.item.promptId === promptId)?.item;
    const owner = item?.extraData.client_id;
    return typeof owner === 'string' ? owner : undefined;
  }

  /** Removes pending prompts; a running one is stopped with `interrupt`, as in ComfyUI. */
  delete(ids: readonly string[]): number {
    const before = this.pending.length;
    const drop = new Set(ids);
    this.pending = this.pending.filter((p) => !drop.has(p.item.promptId));
    if (this.pending.length !== before) this.onChange();
    return before - this.pending.length;
  }

  clear(): number {
    const n = this.pending.length;
    this.pending = [];
    if (n > 0) this.onChange();
    return n;
  }

  /** Interrupts the running prompt (only if it is `promptId`, when given). */
  interrupt(promptId?: string): boolean {
    if (!this.running) return false;
    if (promptId !== undefined && this.running.item.promptId !== promptId) return false;
    return this.executor.interrupt();
  }

  /** Resolves once nothing is pending or running. */
  async idle(): Promise<void> {
    while (this.pumping) await this.pumping;
  }

  /** Drops pending prompts, interrupts the running one and waits for it to end. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.pending = [];
    this.interrupt();
    await this.idle();
  }

  private async pump(): Promise<void> {
    for (let next = this.pending.shift(); next; next = this.pending.shift()) {
      const { item } = next;
      this.running = { item, messages: [], outputs: {}, recorded: false };
      this.onChange();
      let result: RunResult | undefined;
      let failure: unknown;
      try {
        result = await this.executor.run(item.graph, { promptId: item.promptId, outputs: item.outputs, extraData: item.extraData });
      } catch (e) {
        failure = e;
      }
      const running = this.running;
      if (!running.recorded) {
        // No terminal event reached us (the executor itself failed): record what we know.
        if (result) for (const [id, ui] of Object.entries(result.outputs)) running.outputs[id] = ui;
        if (failure !== undefined) running.messages.push(['execution_error', { prompt_id: item.promptId, exception_message: String((failure as Error)?.message ?? failure), timestamp: Date.now() }]);
        this.record(running, result?.status === 'success');
      }
      this.running = undefined;
      this.onChange();
    }
  }

  private observe(event: ExecutorEvent): void {
    const running = this.running;
    if (!running || event.data.prompt_id !== running.item.promptId || running.recorded) return;
    if (event.type === 'executed') running.outputs[event.data.node] = event.data.output;
    if (RECORDED_EVENTS.has(event.type)) running.messages.push([event.type, { ...event.data }]);
    if (event.type === 'execution_success') this.record(running, true);
    else if (event.type === 'execution_error' || event.type === 'execution_interrupted') this.record(running, false);
  }

  private record(running: Running, success: boolean): void {
    running.recorded = true;
    const meta: HistoryEntry['meta'] = {};
    for (const id of Object.keys(running.outputs)) meta[id] = { node_id: id, display_node: id, parent_node: null, real_node_id: id };
    this.history.set(running.item.promptId, {
      prompt: toTuple(running.item),
      outputs: running.outputs,
      status: { status_str: success ? 'success' : 'error', completed: success, messages: running.messages },
      meta,
    });
  }
}
