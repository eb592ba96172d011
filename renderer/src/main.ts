import './zod-setup.js';
import { EditorApp } from './app.js';
import { toModel } from './model.js';

/**
 * Entry point of the editor bundle. `window.resflow` gives scripts and tests a read-only look at the
 * document and a few actions; it is not an API for extensions.
 */
function required<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element as T;
}

async function boot(): Promise<void> {
  const app = await EditorApp.start({
    canvas: required<HTMLCanvasElement>('graph'),
    toolbar: required('toolbar'),
    library: required('library'),
    tabs: required('left-tabs'),
    workflows: required('workflows'),
    models: required('models'),
    queue: required('queue'),
    errors: required('errors'),
    livePreview: document.getElementById('live-preview') ?? undefined,
  });
  const debug = {
    app,
    workflow: () => app.currentWorkflow(),
    model: () => app.store.state,
    history: () => app.store.history(),
    nodeTypes: () => app.view.nodes().map((n) => ({ id: String(n.id), type: n.type, title: n.title })),
    nodeImages: (id: string) => app.exec.nodeImages(id),
    snapshotModel: () => toModel(app.view.snapshot(), app.lib),
    selectNode: (id: string) => {
      const node = app.view.nodeById(id);
      if (node) app.view.canvas.selectNodes([node]);
      return Boolean(node);
    },
    centerOn: (id: string) => {
      const node = app.view.nodeById(id);
      if (node) app.view.canvas.centerOnNode(node);
    },
    /** Page coordinates of a point given relative to a node's top-left (title bar at negative y). */
    screenPos: (id: string, dx: number, dy: number): [number, number] | undefined => {
      const node = app.view.nodeById(id);
      if (!node) return undefined;
      const [x, y] = app.view.canvas.ds.convertOffsetToCanvas([node.pos[0] + dx, node.pos[1] + dy]);
      const rect = app.view.element.getBoundingClientRect();
      return [rect.left + x, rect.top + y];
    },
    /** Page coordinates of an input or output slot. */
    slotPos: (id: string, input: boolean, slot: number): [number, number] | undefined => {
      const node = app.view.nodeById(id);
      if (!node) return undefined;
      const [gx, gy] = input ? node.getInputPos(slot) : node.getOutputPos(slot);
      const [x, y] = app.view.canvas.ds.convertOffsetToCanvas([gx, gy]);
      const rect = app.view.element.getBoundingClientRect();
      return [rect.left + x, rect.top + y];
    },
    links: () => Object.values(app.store.state.links).map((l) => [...l]),
    nodeErrors: (id: string) => {
      const node = app.view.nodeById(id);
      return node ? { has_errors: Boolean(node.has_errors), messages: [...((node as { resflow?: { errors: string[] } }).resflow?.errors ?? [])] } : undefined;
    },
    viewerOpen: () => app.viewer.isOpen,
    scale: () => app.view.canvas.ds.scale,
    readableScale: () => app.view.readableScale(),
    /** Screen boxes of all nodes (title bar included), in graph units. */
    nodeBoxes: () => app.view.nodes().map((n) => ({ id: String(n.id), x: n.pos[0], y: n.pos[1] - 30, w: n.size[0], h: n.size[1] + 30 })),
    ready: true,
  };
  (window as unknown as { resflow: typeof debug }).resflow = debug;
  document.body.dataset.ready = 'true';
}

boot().catch((e: unknown) => {
  console.error(e);
  const box = document.getElementById('fatal');
  if (box) {
    box.hidden = false;
    box.textContent = `The editor could not start: ${e instanceof Error ? e.message : String(e)}`;
  }
});
