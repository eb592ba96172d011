import { button, el } from './dom.js';
import type { RunStatus } from './execution.js';

export interface ToolbarActions {
  open(): void;
  save(): void;
  saveAs(): void;
  exportApi(): void;
  loadDefault(): void;
  undo(): void;
  redo(): void;
  queue(front: boolean): void;
  interrupt(): void;
}

/** The top bar: file actions, undo/redo, run controls, progress and connection state. */
export class Toolbar {
  private readonly undoButton: HTMLButtonElement;
  private readonly redoButton: HTMLButtonElement;
  private readonly progress: HTMLProgressElement;
  private readonly progressLabel: HTMLElement;
  private readonly connection: HTMLElement;
  private readonly remaining: HTMLElement;
  private readonly title: HTMLElement;

  constructor(root: HTMLElement, actions: ToolbarActions) {
    this.undoButton = button('Undo', actions.undo, { title: 'Undo (Ctrl+Z)', 'data-action': 'undo' });
    this.redoButton = button('Redo', actions.redo, { title: 'Redo (Ctrl+Shift+Z)', 'data-action': 'redo' });
    this.progress = el('progress', { max: '1', value: '0', 'aria-label': 'Run progress' });
    this.progressLabel = el('span', { class: 'progress-label', text: 'idle' });
    this.connection = el('span', { class: 'connection offline', text: 'offline', title: 'Server connection' });
    this.remaining = el('span', { class: 'remaining', text: 'queue: 0' });
    this.title = el('span', { class: 'workflow-name', text: 'workflow' });
    root.replaceChildren(
      el('span', { class: 'brand', text: 'ResFlow' }),
      this.title,
      el('div', { class: 'group' }, [
        button('Open', actions.open, { title: 'Open a workflow .json or a PNG with an embedded workflow (Ctrl+O)', 'data-action': 'open' }),
        button('Save', actions.save, { title: 'Save the workflow as JSON (Ctrl+S)', 'data-action': 'save' }),
        button('Save As', actions.saveAs, { 'data-action': 'save-as' }),
        button('Export API', actions.exportApi, { title: 'Download the API-format prompt', 'data-action': 'export-api' }),
        button('Default', actions.loadDefault, { title: 'Load the default ResAdapter workflow', 'data-action': 'load-default' }),
      ]),
      el('div', { class: 'group' }, [this.undoButton, this.redoButton]),
      el('div', { class: 'group run' }, [
        button('Queue', () => actions.queue(false), { class: 'primary', title: 'Queue the workflow (Ctrl+Enter)', 'data-action': 'queue' }),
        button('Queue front', () => actions.queue(true), { title: 'Queue ahead of pending prompts (Ctrl+Shift+Enter)', 'data-action': 'queue-front' }),
        button('Interrupt', actions.interrupt, { class: 'danger', title: 'Stop the running prompt', 'data-action': 'interrupt' }),
      ]),
      el('div', { class: 'group status' }, [this.progress, this.progressLabel, this.remaining, this.connection]),
    );
  }

  setUndoState(canUndo: boolean, canRedo: boolean): void {
    this.undoButton.disabled = !canUndo;
    this.redoButton.disabled = !canRedo;
  }

  setName(name: string): void {
    this.title.textContent = name;
  }

  setConnected(connected: boolean): void {
    this.connection.textContent = connected ? 'connected' : 'offline';
    this.connection.className = `connection ${connected ? 'online' : 'offline'}`;
  }

  setRemaining(n: number): void {
    this.remaining.textContent = `queue: ${n}`;
  }

  setRun(status: RunStatus): void {
    if (status.max > 0) {
      this.progress.value = status.value / status.max;
      this.progressLabel.textContent = `node ${status.node}: ${status.value}/${status.max}`;
    } else {
      this.progress.value = 0;
      this.progressLabel.textContent = status.node ? `node ${status.node}` : 'idle';
    }
  }
}
