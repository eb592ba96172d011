import type { NodeInfo } from '../../nodes/registry.js';
import { el, toast } from './dom.js';

/** What dragging a model file carries: the node that loads it and the widget to set. */
export const MODEL_DRAG_TYPE = 'application/x-resflow-model';

export interface ModelTarget {
  nodeType: string;
  input: string;
  value: string;
}

/**
 * The node that loads `file`: a node whose combo lists it, preferring loaders (category "loaders…" or a
 * name with "Load") and required inputs. The server's `/object_info` combos are the folder listings, so
 * this needs no table of folder → node to keep in sync.
 */
export function loaderFor(file: string, info: Map<string, NodeInfo>): Omit<ModelTarget, 'value'> | undefined {
  let best: { nodeType: string; input: string; score: number } | undefined;
  for (const [nodeType, node] of info) {
    for (const [group, inputs] of [['required', node.input.required], ['optional', node.input.optional ?? {}]] as const) {
      for (const [input, wire] of Object.entries(inputs)) {
        const choices = Array.isArray(wire[0]) ? wire[0] : (wire[1] as { options?: unknown } | undefined)?.options;
        if (!Array.isArray(choices) || !choices.includes(file)) continue;
        const score =
          (node.category?.startsWith('loaders') ? 4 : 0) +
          (/Load/.test(nodeType) ? 2 : 0) +
          (group === 'required' ? 1 : 0) -
          nodeType.length / 1000;
        if (!best || score > best.score) best = { nodeType, input, score };
      }
    }
  }
  return best && { nodeType: best.nodeType, input: best.input };
}

/**
 * The Models panel: every model folder the server knows, its files, and the node each file loads
 * into. Drag a file onto the canvas (or click it) to create that node with the file selected.
 */
export class ModelsPanel {
  private readonly list = el('div', { class: 'models-list', 'data-testid': 'models-list' });

  constructor(
    root: HTMLElement,
    private readonly info: Map<string, NodeInfo>,
    private readonly add: (target: ModelTarget) => void,
  ) {
    root.replaceChildren(el('h3', { text: 'Models' }), el('p', { class: 'muted', text: 'Drag a file onto the canvas to load it.' }), this.list);
  }

  async refresh(): Promise<void> {
    try {
      const folders = (await (await fetch('/api/models')).json()) as string[];
      const files = await Promise.all(folders.map(async (f) => [f, (await (await fetch(`/api/models/${encodeURIComponent(f)}`)).json()) as string[]] as const));
      this.list.replaceChildren(
        ...files.map(([folder, names]) => {
          const details = el('details', { class: 'model-folder', 'data-folder': folder });
          if (names.length > 0) details.open = true;
          details.append(el('summary', { text: `${folder} (${names.length})` }), ...names.map((n) => this.item(n)));
          return details;
        }),
      );
    } catch (e) {
      toast(`Could not list models: ${(e as Error).message}`, 'error');
    }
  }

  private item(file: string): HTMLElement {
    const loader = loaderFor(file, this.info);
    const item = el('div', { class: 'model-item', 'data-model': file, title: file }, [
      el('span', { text: file }),
      el('span', { class: 'loader', text: loader ? `→ ${loader.nodeType}.${loader.input}` : 'no node loads this file' }),
    ]);
    if (!loader) return item;
    const target: ModelTarget = { ...loader, value: file };
    item.draggable = true;
    item.dataset.nodeType = loader.nodeType;
    item.addEventListener('dragstart', (e) => {
      e.dataTransfer?.setData(MODEL_DRAG_TYPE, JSON.stringify(target));
      if (e.dataTransfer) e.dataTransfer.effectAllowed = 'copy';
    });
    item.addEventListener('click', () => this.add(target));
    return item;
  }
}
