import type { LGraphNode } from '@comfyorg/litegraph';
import type { NodeErrors, PromptError } from '../../runtime/executor/errors.js';
import type { ApiClient, ImageRef } from './api.js';
import { clearToasts, el, toast } from './dom.js';
import { ensureImageRoom, runState } from './node-types.js';
import type { ServerMessage } from './socket.js';
import type { GraphView } from './view.js';

export interface RunStatus {
  promptId?: string;
  node?: string;
  value: number;
  max: number;
}

/**
 * Mirrors execution on the canvas: the executing node is outlined and shows its progress bar,
 * sampler previews and final images appear on their nodes, errors are drawn under the node that
 * caused them and listed in the error panel. Node results are remembered by id, so they survive the
 * canvas being rebuilt (undo, redo, reload).
 */
export class ExecutionView {
  private readonly images = new Map<string, ImageRef[]>();
  private readonly errors = new Map<string, string[]>();
  private preview?: { node: string; url: string };
  /** Node errors the server reported when it accepted a prompt (outputs it will skip), by prompt id. */
  private readonly accepted = new Map<string, { error: PromptError; nodeErrors: NodeErrors }>();
  private executing?: string;
  private readonly listeners = new Set<(status: RunStatus) => void>();
  status: RunStatus = { value: 0, max: 0 };

  constructor(
    private readonly view: GraphView,
    private readonly api: ApiClient,
    private readonly errorPanel: HTMLElement,
    private readonly livePreview?: HTMLElement,
  ) {}

  onStatus(listener: (s: RunStatus) => void): void {
    this.listeners.add(listener);
  }

  /** Re-applies remembered images and errors to freshly built nodes. */
  reapply(): void {
    for (const node of this.view.nodes()) {
      const id = String(node.id);
      const state = runState(node);
      state.errors = this.errors.get(id) ?? [];
      node.has_errors = state.errors.length > 0;
      const refs = this.images.get(id);
      if (refs) this.setImages(node, refs.map((r) => this.api.viewUrl(r)), false);
    }
    this.view.redraw();
  }

  handle(msg: ServerMessage): void {
    switch (msg.type) {
      case 'execution_start': {
        this.clearRuntimeErrors();
        const partial = this.accepted.get(msg.data.prompt_id);
        if (partial) this.showValidationErrors(partial.error, partial.nodeErrors, false);
        this.setStatus({ promptId: msg.data.prompt_id, value: 0, max: 0 });
        break;
      }
      case 'executing':
        this.setExecuting(msg.data.node ?? undefined);
        if (msg.data.node === null) this.setStatus({ value: 0, max: 0 });
        else this.setStatus({ ...this.status, promptId: msg.data.prompt_id, node: msg.data.node, value: 0, max: 0 });
        break;
      case 'progress': {
        const node = this.view.nodeById(msg.data.node);
        if (node) node.progress = msg.data.max > 0 ? msg.data.value / msg.data.max : 0;
        this.setStatus({ promptId: msg.data.prompt_id, node: msg.data.node, value: msg.data.value, max: msg.data.max });
        this.view.redraw();
        break;
      }
      case 'preview':
        this.showPreview(msg.data.blob);
        break;
      case 'executed': {
        const refs = (msg.data.output.images ?? []) as ImageRef[];
        if (refs.length === 0) break;
        this.images.set(msg.data.node, refs);
        const node = this.view.nodeById(msg.data.node);
        if (node) this.setImages(node, refs.map((r) => this.api.viewUrl(r)), true);
        break;
      }
      case 'execution_error': {
        const { node_id, node_type, exception_message, exception_type } = msg.data;
        this.setNodeErrors(node_id, [`${exception_type}: ${exception_message}`]);
        this.showPanel(`Run failed in node #${node_id} (${node_type})`, [`${exception_type}: ${exception_message}`]);
        toast(`Error in ${node_type} #${node_id}: ${exception_message}`, 'error');
        break;
      }
      case 'execution_interrupted':
        toast('Run interrupted', 'info');
        break;
      case 'execution_success': {
        // A clean run clears what earlier runs left on screen; a partial one keeps its skipped nodes shown.
        const partial = this.accepted.get(msg.data.prompt_id);
        this.accepted.delete(msg.data.prompt_id);
        if (!partial) {
          this.clearAllErrors();
          clearToasts('error');
        }
        break;
      }
      default:
        break;
    }
  }

  /**
   * A prompt the server accepted although some nodes are invalid (their outputs are skipped, as in
   * ComfyUI): flag those nodes now and again when the prompt starts, so "done" never hides them.
   */
  acceptedWithErrors(promptId: string, nodeErrors: NodeErrors): void {
    const count = Object.keys(nodeErrors).length;
    const error: PromptError = {
      type: 'prompt_outputs_failed_validation',
      message: `${count} node${count === 1 ? '' : 's'} failed validation; the outputs depending on them are skipped`,
      details: '',
      extra_info: {},
    };
    this.accepted.set(promptId, { error, nodeErrors });
    this.showValidationErrors(error, nodeErrors);
  }

  /** Shows `POST /prompt` validation errors on the nodes they concern. */
  showValidationErrors(error: PromptError, nodeErrors: NodeErrors, notify = true): void {
    this.clearAllErrors();
    const lines: string[] = [];
    for (const [id, info] of Object.entries(nodeErrors)) {
      const messages = info.errors.map((e) => {
        const input = (e.extra_info as { input_name?: string })?.input_name;
        return `${input ? `${input}: ` : ''}${e.message}${e.details && e.details !== input ? ` (${e.details})` : ''}`;
      });
      this.setNodeErrors(id, messages);
      for (const m of messages) lines.push(`#${id} ${info.class_type}: ${m}`);
    }
    if (lines.length === 0) lines.push(error.details || error.message);
    this.showPanel(error.message, lines);
    if (notify) toast(error.message, 'error');
  }

  clearAllErrors(): void {
    for (const id of [...this.errors.keys()]) this.setNodeErrors(id, []);
    this.errors.clear();
    this.errorPanel.hidden = true;
    this.view.redraw();
  }

  nodeImages(id: string): string[] {
    const node = this.view.nodeById(id);
    return node ? runState(node).images.map((i) => i.src) : [];
  }

  private clearRuntimeErrors(): void {
    this.clearAllErrors();
  }

  private setNodeErrors(id: string, messages: string[]): void {
    if (messages.length > 0) this.errors.set(id, messages);
    else this.errors.delete(id);
    const node = this.view.nodeById(id);
    if (!node) return;
    runState(node).errors = messages;
    node.has_errors = messages.length > 0;
    this.view.redraw();
  }

  private showPanel(title: string, lines: string[]): void {
    this.errorPanel.replaceChildren(
      el('div', { class: 'error-title', text: title }),
      el('ul', {}, lines.map((l) => el('li', { text: l }))),
      el('button', { type: 'button', class: 'error-close', text: 'Dismiss' }),
    );
    this.errorPanel.querySelector('.error-close')!.addEventListener('click', () => (this.errorPanel.hidden = true));
    this.errorPanel.hidden = false;
  }

  private setExecuting(id: string | undefined): void {
    if (this.executing) {
      const previous = this.view.nodeById(this.executing);
      if (previous) {
        runState(previous).executing = false;
        previous.progress = undefined;
      }
    }
    this.executing = id;
    if (id) {
      const node = this.view.nodeById(id);
      if (node) runState(node).executing = true;
    }
    this.view.redraw();
  }

  private showPreview(blob: Blob): void {
    const id = this.executing;
    if (!id) return;
    const node = this.view.nodeById(id);
    if (!node) return;
    if (this.preview) URL.revokeObjectURL(this.preview.url);
    const url = URL.createObjectURL(blob);
    this.preview = { node: id, url };
    // Previews never resize nodes (a sampler growing mid-run would cover its neighbours); the sidebar
    // always shows them, the node only when it has room.
    this.setImages(node, [url], false);
    if (this.livePreview) {
      this.livePreview.hidden = false;
      this.livePreview.querySelector('img')!.src = url;
      this.livePreview.querySelector('figcaption')!.textContent = `${node.title} #${id}, step ${this.status.value}/${this.status.max}`;
    }
  }

  private setImages(node: LGraphNode, urls: string[], grow: boolean): void {
    const state = runState(node);
    state.images = urls.map((src) => {
      const img = new Image();
      img.onload = () => this.view.redraw();
      img.src = src;
      return img;
    });
    if (grow && ensureImageRoom(node)) this.view.scheduleCheck();
    this.view.redraw();
  }

  private setStatus(status: RunStatus): void {
    this.status = status;
    for (const l of this.listeners) l(status);
  }
}
