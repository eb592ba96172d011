import type { NodeLibrary } from './defs.js';
import { el } from './dom.js';
import { searchNodes, type SearchEntry } from './search.js';

type Entry = SearchEntry;

/**
 * The node library sidebar: a search box over all node types and a category tree built from
 * `/object_info`. Clicking (or pressing Enter on) an entry adds the node in the middle of the view.
 */
export class LibraryPanel {
  private readonly entries: Entry[];
  private readonly list: HTMLElement;
  readonly search: HTMLInputElement;

  constructor(
    root: HTMLElement,
    lib: NodeLibrary,
    private readonly add: (type: string) => void,
  ) {
    this.entries = lib.names().map((name) => {
      const def = lib.get(name)!;
      const category = def.spec.category;
      return {
        name,
        display: def.displayName,
        category,
        description: def.spec.description ?? '',
      };
    });
    this.search = el('input', { type: 'search', placeholder: 'Search nodes…', 'aria-label': 'Search nodes', class: 'library-search' });
    this.list = el('div', { class: 'library-list', role: 'tree' });
    this.search.addEventListener('input', () => this.render());
    this.search.addEventListener('keydown', (e) => {
      e.stopPropagation();
      if (e.key === 'Enter') {
        const first = this.list.querySelector<HTMLElement>('.library-node');
        first?.click();
      }
    });
    root.replaceChildren(el('h3', { text: 'Nodes' }), this.search, this.list);
    this.render();
  }

  private item(entry: Entry): HTMLElement {
    const item = el('div', { class: 'library-node', role: 'treeitem', tabindex: '0', title: entry.name, 'data-node-type': entry.name, text: entry.display });
    item.addEventListener('click', () => this.add(entry.name));
    item.addEventListener('keydown', (e) => e.key === 'Enter' && this.add(entry.name));
    return item;
  }

  private render(): void {
    const query = this.search.value.trim();
    if (query) {
      const found = searchNodes(this.entries, query);
      this.list.replaceChildren(...(found.length ? found.map((e) => this.item(e)) : [el('p', { class: 'muted', text: 'No matching nodes.' })]));
      return;
    }
    const byCategory = new Map<string, Entry[]>();
    for (const e of this.entries) {
      const list = byCategory.get(e.category) ?? [];
      list.push(e);
      byCategory.set(e.category, list);
    }
    const groups = [...byCategory.keys()].sort().map((category) => {
      const details = el('details', { class: 'library-category' });
      // Break long nested categories (sampling/custom_sampling/guiders) after a slash rather than pushing them under the marker.
      details.append(el('summary', { text: category.replaceAll('/', '/\u200b'), title: category }), ...byCategory.get(category)!.sort((a, b) => a.display.localeCompare(b.display)).map((e) => this.item(e)));
      return details;
    });
    this.list.replaceChildren(...groups);
  }
}
