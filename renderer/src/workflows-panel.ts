import type { EditorWorkflow } from '../../runtime/workflow/editor-schema.js';
import { button, el, toast } from './dom.js';

/** Saved workflows live in ComfyUI's user-data folder, so ComfyUI clients list the same files. */
const DIR = 'workflows';
const userPath = (name: string) => `/api/userdata/${encodeURIComponent(`${DIR}/${name}`)}`;

export interface WorkflowsPanelActions {
  /** Opens a workflow file's bytes (editor or API JSON) under a display name. */
  openFile(name: string, data: ArrayBuffer): Promise<void>;
  openWorkflow(workflow: EditorWorkflow, name: string): void;
  current(): { workflow: EditorWorkflow; name: string };
}

async function ok(res: Response, what: string): Promise<Response> {
  if (res.ok) return res;
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = (await res.json()) as { error?: { message?: string } };
    if (body.error?.message) message = body.error.message;
  } catch {
    // not JSON: keep the status line
  }
  throw new Error(`${what}: ${message}`);
}

function fileName(input: string): string | undefined {
  const name = input.trim().replace(/[\\/:*?"<>|\u0000-\u001f]/g, '_');
  if (!name || name.startsWith('.')) return undefined;
  return name.toLowerCase().endsWith('.json') ? name : `${name}.json`;
}

/**
 * The Workflows panel: the bundled templates (workflows/ in the repository, read-only) and the user's
 * saved workflows (server-side, `<data>/user/default/workflows/` through the `/userdata` routes) with
 * open, save, rename and delete.
 */
export class WorkflowsPanel {
  private readonly templates = el('ul', { class: 'workflow-templates', 'data-testid': 'workflow-templates' });
  private readonly saved = el('ul', { class: 'workflow-saved', 'data-testid': 'workflow-saved' });

  constructor(
    root: HTMLElement,
    private readonly actions: WorkflowsPanelActions,
  ) {
    root.replaceChildren(
      el('h3', { text: 'Saved' }),
      button('Save current…', () => void this.saveCurrent(), { 'data-action': 'save-to-workflows', title: 'Save the canvas to your workflows on the server' }),
      this.saved,
      el('h3', { text: 'Templates' }),
      this.templates,
    );
  }

  async refresh(): Promise<void> {
    const [templates, saved] = await Promise.all([
      fetch('/api/workflows').then((r) => ok(r, 'templates')).then((r) => r.json() as Promise<string[]>),
      fetch(`/api/userdata?dir=${DIR}`).then((r) => (r.status === 404 ? [] : ok(r, 'saved workflows').then((x) => x.json() as Promise<string[]>))),
    ]);
    this.templates.replaceChildren(...templates.map((name) => this.templateItem(name)));
    this.saved.replaceChildren(...(saved.length ? saved.map((name) => this.savedItem(name)) : [el('li', { class: 'muted', text: 'No saved workflows yet.' })]));
  }

  private templateItem(name: string): HTMLElement {
    const open = async () => {
      try {
        const wf = (await (await ok(await fetch(`/api/workflows/${encodeURIComponent(name)}`), name)).json()) as EditorWorkflow;
        this.actions.openWorkflow(wf, name.replace(/\.json$/, ''));
      } catch (e) {
        toast((e as Error).message, 'error');
      }
    };
    const label = el('span', { class: 'name', text: name.replace(/\.json$/, ''), title: `Open the template ${name}` });
    label.addEventListener('click', () => void open());
    return el('li', { class: 'panel-item', 'data-template': name }, [label, button('Open', () => void open(), { 'data-action': 'open' })]);
  }

  private savedItem(name: string): HTMLElement {
    const open = async () => {
      try {
        const data = await (await ok(await fetch(userPath(name)), name)).arrayBuffer();
        await this.actions.openFile(name, data);
      } catch (e) {
        toast((e as Error).message, 'error');
      }
    };
    const label = el('span', { class: 'name', text: name.replace(/\.json$/, ''), title: `Open ${name}` });
    label.addEventListener('click', () => void open());
    return el('li', { class: 'panel-item', 'data-saved': name }, [
      label,
      button('Rename', () => void this.rename(name), { 'data-action': 'rename' }),
      button('Delete', () => void this.remove(name), { 'data-action': 'delete', class: 'danger' }),
    ]);
  }

  async saveCurrent(): Promise<void> {
    const { workflow, name } = this.actions.current();
    const chosen = fileName(window.prompt('Save workflow as', name) ?? '');
    if (!chosen) return;
    try {
      await ok(await fetch(`${userPath(chosen)}?overwrite=true`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(workflow, null, 2) }), 'save');
      toast(`Saved ${chosen}`, 'success');
    } catch (e) {
      toast((e as Error).message, 'error');
    }
    await this.refresh();
  }

  private async rename(name: string): Promise<void> {
    const chosen = fileName(window.prompt(`Rename ${name} to`, name.replace(/\.json$/, '')) ?? '');
    if (!chosen || chosen === name) return;
    try {
      await ok(await fetch(`${userPath(name)}/move/${encodeURIComponent(`${DIR}/${chosen}`)}`, { method: 'POST' }), 'rename');
    } catch (e) {
      toast((e as Error).message, 'error');
    }
    await this.refresh();
  }

  private async remove(name: string): Promise<void> {
    if (!window.confirm(`Delete ${name}? This cannot be undone.`)) return;
    try {
      await ok(await fetch(userPath(name), { method: 'DELETE' }), 'delete');
    } catch (e) {
      toast((e as Error).message, 'error');
    }
    await this.refresh();
  }
}
