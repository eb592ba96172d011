import type { EditorWorkflow } from '../../runtime/workflow/editor-schema.js';
import type { ApiClient, HistoryItem, QueueState, QueueTuple } from './api.js';
import { button, el, toast } from './dom.js';

/**
 * The queue sidebar: the running prompt, pending prompts (each removable), and recent history with
 * output thumbnails. It re-reads `/queue` and `/history` whenever the server reports a queue change.
 */
export class QueuePanel {
  private refreshing?: Promise<void>;
  private again = false;

  constructor(
    private readonly root: HTMLElement,
    private readonly api: ApiClient,
    private readonly loadWorkflow: (workflow: EditorWorkflow) => void,
  ) {}

  refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.again = false;
        try {
          const [queue, history] = await Promise.all([this.api.queue(), this.api.history(20)]);
          this.render(queue, history);
        } catch (e) {
          this.root.replaceChildren(el('p', { class: 'muted', text: `Queue unavailable: ${(e as Error).message}` }));
        }
      } while (this.again);
    })().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private render(queue: QueueState, history: Record<string, HistoryItem>): void {
    const running = queue.queue_running.map((q) => this.queueItem(q, 'running'));
    const pending = queue.queue_pending.map((q) => this.queueItem(q, 'pending'));
    const done = Object.entries(history)
      .reverse()
      .map(([id, item]) => this.historyItem(id, item));
    const parts: (HTMLElement | undefined)[] = [
      el('h3', { text: `Queue (${running.length + pending.length})` }),
      el('ul', { class: 'queue-list', 'data-testid': 'queue-list' }, [...running, ...pending]),
      running.length + pending.length === 0 ? el('p', { class: 'muted', text: 'Nothing queued.' }) : undefined,
      pending.length > 0 ? button('Clear pending', () => void this.api.clearQueue().then(() => this.refresh())) : undefined,
      el('h3', { text: 'History' }),
      el('ul', { class: 'history-list', 'data-testid': 'history-list' }, done),
      done.length > 0 ? button('Clear history', () => void this.api.clearHistory().then(() => this.refresh())) : undefined,
    ];
    this.root.replaceChildren(...parts.filter((p): p is HTMLElement => p !== undefined));
  }

  private queueItem(q: QueueTuple, state: 'running' | 'pending'): HTMLElement {
    const [number, id] = q;
    const remove = button(state === 'running' ? 'Stop' : '✕', () => {
      const action = state === 'running' ? this.api.interrupt(id) : this.api.deleteFromQueue([id]);
      void action.then(() => this.refresh());
    }, { title: state === 'running' ? 'Interrupt this run' : 'Remove from queue' });
    return el('li', { class: `queue-item ${state}`, 'data-prompt-id': id }, [
      el('span', { class: 'queue-state', text: state === 'running' ? 'running' : `#${number}` }),
      el('span', { class: 'queue-id', text: id.slice(0, 8) }),
      remove,
    ]);
  }

  private historyItem(id: string, item: HistoryItem): HTMLElement {
    const images = Object.values(item.outputs).flatMap((o) => o.images ?? []);
    const thumbs = images.slice(0, 3).map((img) => el('img', { class: 'history-thumb', src: this.api.viewUrl(img), alt: img.filename, loading: 'lazy' }));
    const workflow = (item.prompt[3] as { extra_pnginfo?: { workflow?: EditorWorkflow } })?.extra_pnginfo?.workflow;
    const status = item.status.status_str === 'success' ? 'done' : item.status.messages.some((m) => m[0] === 'execution_interrupted') ? 'interrupted' : 'failed';
    return el('li', { class: `history-item ${status}`, 'data-prompt-id': id }, [
      el('div', { class: 'history-head' }, [
        el('span', { class: `badge ${status}`, text: status }),
        el('span', { class: 'queue-id', text: id.slice(0, 8) }),
        workflow ? button('Load', () => (this.loadWorkflow(workflow), toast('Workflow loaded from history'))) : undefined,
      ]),
      thumbs.length > 0 ? el('div', { class: 'thumbs' }, thumbs) : undefined,
    ]);
  }
}
