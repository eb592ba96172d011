import { parseEditorWorkflow, type EditorWorkflow } from '../../runtime/workflow/editor-schema.js';

const KEY = 'resflow.session.workflow';
const NAME_KEY = 'resflow.session.name';

/**
 * The session's graph in localStorage, written shortly after each change, so a reload (or a crash)
 * brings back what was on the canvas. A stored graph that no longer parses is ignored, not fatal.
 */
export class SessionStore {
  private timer?: ReturnType<typeof setTimeout>;

  constructor(private readonly storage: Storage = localStorage) {}

  restore(): { workflow: EditorWorkflow; name?: string } | undefined {
    const text = this.storage.getItem(KEY);
    if (!text) return undefined;
    const parsed = parseEditorWorkflow(text);
    if (!parsed.success) {
      console.warn('ignoring the stored session graph:', parsed.error.message);
      return undefined;
    }
    return { workflow: parsed.data, name: this.storage.getItem(NAME_KEY) ?? undefined };
  }

  save(workflow: () => EditorWorkflow, name?: string, delayMs = 300): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.saveNow(workflow(), name), delayMs);
  }

  saveNow(workflow: EditorWorkflow, name?: string): void {
    try {
      this.storage.setItem(KEY, JSON.stringify(workflow));
      if (name) this.storage.setItem(NAME_KEY, name);
    } catch (e) {
      console.warn('could not store the session graph:', e);
    }
  }

  clear(): void {
    this.storage.removeItem(KEY);
    this.storage.removeItem(NAME_KEY);
  }
}
