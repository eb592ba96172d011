import type { HistoryStore, QueueTuple } from './history.js';
import type { QueuedPrompt } from './prompt-queue.js';

/**
 * What the HTTP routes and the websocket bridge need from a queue: the in-process PromptQueue runs prompts
 * itself, the farm's queue hands them to workers through Redis. Both keep ComfyUI's queue semantics.
 */
export interface ServerQueue {
  readonly history: HistoryStore;
  nextNumber(front: boolean): number;
  has(promptId: string): boolean;
  /** Resolves once the prompt is safely queued (for the farm: stored in Redis). */
  enqueue(item: QueuedPrompt): void | Promise<void>;
  remaining(): number;
  snapshot(): { queue_running: QueueTuple[]; queue_pending: QueueTuple[] };
  /** The websocket client that queued a prompt, so its events go to that client only. */
  ownerOf(promptId: string): string | undefined;
  delete(ids: readonly string[]): number;
  clear(): number;
  interrupt(promptId?: string): boolean;
  idle(): Promise<void>;
  stop(): Promise<void>;
}
