import type { NodeInfo } from '../../nodes/registry.js';
import type { NodeErrors, PromptError } from '../../runtime/executor/errors.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import type { EditorWorkflow } from '../../runtime/workflow/editor-schema.js';

export interface ImageRef {
  filename: string;
  subfolder: string;
  type: string;
}

export type QueueTuple = [number, string, ApiPrompt, Record<string, unknown>, string[]];

export interface QueueState {
  queue_running: QueueTuple[];
  queue_pending: QueueTuple[];
}

export interface HistoryItem {
  prompt: QueueTuple;
  outputs: Record<string, { images?: ImageRef[] } & Record<string, unknown[]>>;
  status: { status_str: 'success' | 'error'; completed: boolean; messages: [string, Record<string, unknown>][] };
}

export type QueueResult = { ok: true; promptId: string; number: number; nodeErrors: NodeErrors } | { ok: false; error: PromptError; nodeErrors: NodeErrors };

/** The server's HTTP API, under `/api` like ComfyUI's frontend uses it. */
export class ApiClient {
  constructor(
    readonly clientId: string,
    private readonly base = '/api',
  ) {}

  private async json<T>(path: string, init?: RequestInit): Promise<T> {
    const res = await fetch(`${this.base}${path}`, init);
    const text = await res.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      throw new Error(res.ok ? `invalid JSON from ${path}` : `${res.status} ${res.statusText}: ${text.slice(0, 200)}`);
    }
    if (!res.ok) {
      const message = (body as { error?: { message?: string; details?: string } })?.error;
      throw new Error(message ? `${message.message}${message.details ? `: ${message.details}` : ''}` : `${res.status} ${res.statusText}`);
    }
    return body as T;
  }

  private post(path: string, body: unknown): Promise<Response> {
    return fetch(`${this.base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  }

  objectInfo(): Promise<Record<string, NodeInfo>> {
    return this.json('/object_info');
  }

  defaultWorkflow(): Promise<EditorWorkflow> {
    return this.json('/workflows/default');
  }

  async queuePrompt(prompt: ApiPrompt, workflow: EditorWorkflow, front = false): Promise<QueueResult> {
    const res = await this.post('/prompt', { prompt, client_id: this.clientId, front, extra_data: { extra_pnginfo: { workflow } } });
    const body = await res.json();
    if (res.ok) return { ok: true, promptId: body.prompt_id, number: body.number, nodeErrors: body.node_errors ?? {} };
    return { ok: false, error: body.error, nodeErrors: body.node_errors ?? {} };
  }

  async interrupt(promptId?: string): Promise<void> {
    await this.post('/interrupt', promptId ? { prompt_id: promptId } : {});
  }

  queue(): Promise<QueueState> {
    return this.json('/queue');
  }

  async deleteFromQueue(ids: string[]): Promise<void> {
    await this.post('/queue', { delete: ids });
  }

  async clearQueue(): Promise<void> {
    await this.post('/queue', { clear: true });
  }

  history(maxItems = 30): Promise<Record<string, HistoryItem>> {
    return this.json(`/history?max_items=${maxItems}`);
  }

  async clearHistory(): Promise<void> {
    await this.post('/history', { clear: true });
  }

  viewUrl(image: ImageRef): string {
    const params = new URLSearchParams({ filename: image.filename, subfolder: image.subfolder ?? '', type: image.type ?? 'output' });
    return `${this.base}/view?${params}`;
  }

  async uploadImage(file: File, overwrite = false): Promise<ImageRef> {
    const form = new FormData();
    form.append('image', file, file.name);
    form.append('type', 'input');
    if (overwrite) form.append('overwrite', 'true');
    const res = await this.json<{ name: string; subfolder: string; type: string }>('/upload/image', { method: 'POST', body: form });
    return { filename: res.name, subfolder: res.subfolder, type: res.type };
  }
}
