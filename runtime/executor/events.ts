import type { PreviewImage, UiOutput } from '../nodes-api/spec.js';

/**
 * Executor events. Names and payload fields are ComfyUI's websocket messages, so the server can
 * forward `{ type, data }` as is. Timestamps are milliseconds since the epoch, as ComfyUI sends them.
 */
export interface ExecutorEventMap {
  execution_start: { prompt_id: string; timestamp: number };
  /** Nodes of this prompt whose outputs were already cached when the run began. */
  execution_cached: { nodes: string[]; prompt_id: string; timestamp: number };
  /** `node: null` closes every run, after success, error or interruption. */
  executing: { node: string | null; display_node?: string; prompt_id: string };
  /** `metrics` is ResFlow's addition (ComfyUI clients ignore unknown fields): e.g. loss and lr while training. */
  progress: { value: number; max: number; prompt_id: string; node: string; metrics?: Record<string, number> };
  /**
   * Not a JSON message in ComfyUI: it travels as a binary websocket frame (type 1, then a format
   * code, then the image bytes). Kept separate so `progress` stays plain JSON.
   */
  preview_image: { prompt_id: string; node: string; display_node: string; image: PreviewImage };
  /** UI output of a node; cached output nodes send theirs again so a re-run still shows its images. */
  executed: { node: string; display_node: string; output: UiOutput; prompt_id: string };
  execution_success: { prompt_id: string; timestamp: number };
  execution_error: {
    prompt_id: string;
    node_id: string;
    node_type: string;
    executed: string[];
    exception_message: string;
    exception_type: string;
    traceback: string[];
    /** ComfyUI keeps every input as a list; each here is a one-element list of a JSON-safe rendering. */
    current_inputs: Record<string, unknown[]>;
    /** Ids of the nodes that were cached when the run began. */
    current_outputs: string[];
    timestamp: number;
  };
  execution_interrupted: { prompt_id: string; node_id: string; node_type: string; executed: string[]; timestamp: number };
}

export type ExecutorEventType = keyof ExecutorEventMap;
export type ExecutorEvent = { [K in ExecutorEventType]: { type: K; data: ExecutorEventMap[K] } }[ExecutorEventType];

type Listener<T> = (data: T) => void;

/**
 * A small typed emitter. A throwing listener must not abort a render, so listener errors are
 * handed to `onListenerError` instead of propagating into the executor.
 */
export class ExecutorEvents {
  private readonly listeners = new Map<ExecutorEventType, Set<Listener<never>>>();
  private readonly anyListeners = new Set<Listener<ExecutorEvent>>();

  constructor(private readonly onListenerError: (error: unknown, event: ExecutorEvent) => void = (e) => console.error('executor event listener failed:', e)) {}

  on<K extends ExecutorEventType>(type: K, listener: Listener<ExecutorEventMap[K]>): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => set.delete(listener as Listener<never>);
  }

  once<K extends ExecutorEventType>(type: K, listener: Listener<ExecutorEventMap[K]>): () => void {
    const off = this.on(type, (data) => {
      off();
      listener(data);
    });
    return off;
  }

  /** Every event in order, as `{ type, data }`: what a websocket bridge or a test recorder wants. */
  onAny(listener: Listener<ExecutorEvent>): () => void {
    this.anyListeners.add(listener);
    return () => this.anyListeners.delete(listener);
  }

  emit<K extends ExecutorEventType>(type: K, data: ExecutorEventMap[K]): void {
    const event = { type, data } as ExecutorEvent;
    for (const listener of [...(this.listeners.get(type) ?? [])]) this.call(listener as Listener<ExecutorEventMap[K]>, data, event);
    for (const listener of [...this.anyListeners]) this.call(listener, event, event);
  }

  private call<T>(listener: Listener<T>, data: T, event: ExecutorEvent): void {
    try {
      listener(data);
    } catch (error) {
      this.onListenerError(error, event);
    }
  }
}
