import { LGraph, LGraphCanvas, LiteGraph, type LGraphNode } from '@comfyorg/litegraph';
import type { EditorWorkflow } from '../../runtime/workflow/editor-schema.js';
import type { Viewport } from './model.js';

/** Node titles and widget text never start smaller than this on screen. */
export const MIN_TEXT_PX = 11;

/**
 * The litegraph canvas. It is a view: the document lives in the store, and this class only loads a
 * workflow into litegraph and reports, after each user gesture, the workflow litegraph now shows.
 * Gestures are detected broadly (pointer and key releases, litegraph's change callbacks, widget
 * callbacks) and coalesced; the app compares snapshots, so a gesture that changed nothing costs nothing.
 */
export class GraphView {
  readonly graph: LGraph;
  readonly canvas: LGraphCanvas;
  private loading = 0;
  private scheduled = false;
  private readonly listeners = new Set<(workflow: EditorWorkflow) => void>();

  constructor(readonly element: HTMLCanvasElement) {
    LiteGraph.release_link_on_empty_shows_menu = true;
    LiteGraph.middle_click_slot_add_default_node = true;
    LiteGraph.snaps_for_comfy = true;
    this.graph = new LGraph();
    this.canvas = new LGraphCanvas(element, this.graph);
    this.canvas.allow_searchbox = true;
    this.canvas.render_canvas_border = false;
    this.canvas.show_info = false;
    // Titles and widgets stay readable when a large workflow is zoomed out to fit.
    this.canvas.low_quality_zoom_threshold = 0.3;
    this.canvas.clear_background_color = '#1e2127';

    const check = () => this.scheduleCheck();
    this.graph.onAfterChange = check;
    this.graph.onNodeAdded = check;
    this.graph.onNodeRemoved = check;
    this.graph.onConnectionChange = check;
    this.canvas.onNodeMoved = check;
    // Release events finish drags, resizes, key edits and dialog input; litegraph handles them first.
    window.addEventListener('pointerup', () => setTimeout(check, 0));
    window.addEventListener('keyup', () => setTimeout(check, 0));
    window.addEventListener('resize', () => this.fit());
    this.fit();
  }

  onWorkflowChanged(listener: (workflow: EditorWorkflow) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Sizes the canvas to its box: CSS pixels for layout, device pixels for the bitmap (litegraph scales
   * its drawing by devicePixelRatio, so HiDPI screens stay sharp and pointer maths stays in CSS pixels).
   */
  fit(): void {
    const rect = this.element.parentElement?.getBoundingClientRect() ?? this.element.getBoundingClientRect();
    const width = Math.max(1, Math.floor(rect.width));
    const height = Math.max(1, Math.floor(rect.height));
    const dpr = Math.max(1, window.devicePixelRatio || 1);
    this.element.style.width = `${width}px`;
    this.element.style.height = `${height}px`;
    if (this.element.width === Math.round(width * dpr) && this.element.height === Math.round(height * dpr)) return;
    this.canvas.resize(Math.round(width * dpr), Math.round(height * dpr));
    // Resizing resets the context; litegraph draws in CSS pixels on top of this base scale.
    this.element.getContext('2d')?.scale(dpr, dpr);
    this.canvas.setDirty(true, true);
  }

  /** Shows `workflow`; no change is reported for it (the caller already has it). */
  load(workflow: EditorWorkflow, viewport?: Viewport): void {
    this.loading++;
    try {
      this.graph.configure(structuredClone(workflow) as never);
      const ds = viewport ?? (workflow.extra as { ds?: Viewport } | undefined)?.ds;
      if (ds && Array.isArray(ds.offset)) {
        this.canvas.ds.scale = ds.scale;
        this.canvas.ds.offset = [ds.offset[0], ds.offset[1]];
      }
      // Drawing lays nodes out (litegraph grows nodes too small for their widgets); do it now so the
      // snapshot taken after a load already has the final sizes instead of reporting them as an edit.
      this.canvas.draw(true, true);
    } finally {
      this.loading--;
    }
    this.canvas.setDirty(true, true);
  }

  /**
   * The smallest zoom at which node titles and widget text are still at least 11 CSS pixels tall
   * (litegraph draws widget text at 12 px and titles at 14 px at scale 1).
   */
  readableScale(): number {
    const px = (font: string, fallback: number) => Number(/(\d+(?:\.\d+)?)px/.exec(font)?.[1] ?? fallback);
    const smallest = Math.min(px(this.canvas.title_text_font, 14), px(this.canvas.inner_text_font, 12));
    return Math.min(1, MIN_TEXT_PX / smallest);
  }

  /**
   * Zooms and pans so every node is visible, but never below the readable scale and never past 100%:
   * a graph too large for the window starts at its top-left corner (where loaders are) and is panned
   * (drag the background) rather than shrunk into unreadable text. A smaller `minScale` shows it all.
   */
  fitToContent(minScale = this.readableScale()): void {
    const nodes = this.nodes();
    if (nodes.length === 0) return;
    let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
    for (const n of nodes) {
      x0 = Math.min(x0, n.pos[0]);
      y0 = Math.min(y0, n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT);
      x1 = Math.max(x1, n.pos[0] + n.size[0]);
      y1 = Math.max(y1, n.pos[1] + n.size[1]);
    }
    const rect = this.element.getBoundingClientRect();
    const margin = 40;
    const fit = Math.min(1, (rect.width - 2 * margin) / (x1 - x0), (rect.height - 2 * margin) / (y1 - y0));
    const scale = Math.max(minScale, fit);
    this.canvas.ds.scale = scale;
    // Centred along an axis that fits; otherwise the graph's start sits at the margin.
    const along = (view: number, lo: number, hi: number) => (view / scale >= hi - lo + (2 * margin) / scale ? (view / scale - (hi - lo)) / 2 - lo : margin / scale - lo);
    this.canvas.ds.offset = [along(rect.width, x0, x1), along(rect.height, y0, y1)];
    this.canvas.setDirty(true, true);
  }

  /**
   * Re-stacks an automatically laid out graph with the sizes litegraph actually gave the nodes (which
   * grow to fit their widgets): nodes keep their columns and order, columns are spaced by their widest
   * node, so no two nodes overlap. Used for API-format imports, which carry no positions of their own.
   */
  relayoutColumns(gap = 40): void {
    const nodes = this.nodes();
    if (nodes.length === 0) return;
    const columns = new Map<number, LGraphNode[]>();
    for (const n of nodes) {
      const key = Math.round(n.pos[0]);
      columns.set(key, [...(columns.get(key) ?? []), n]);
    }
    const title = LiteGraph.NODE_TITLE_HEIGHT;
    let x = Math.min(...columns.keys());
    const top = Math.min(...nodes.map((n) => n.pos[1]));
    for (const key of [...columns.keys()].sort((a, b) => a - b)) {
      const column = columns.get(key)!.sort((a, b) => a.pos[1] - b.pos[1]);
      let y = top;
      for (const n of column) {
        n.pos = [x, y];
        y += n.size[1] + title + gap;
      }
      x += Math.max(...column.map((n) => n.size[0])) + gap;
    }
    this.canvas.setDirty(true, true);
    this.scheduleCheck();
  }

  viewport(): Viewport {
    return { scale: this.canvas.ds.scale, offset: [this.canvas.ds.offset[0], this.canvas.ds.offset[1]] };
  }

  /** What litegraph shows, in its serialized (editor workflow) form. */
  snapshot(): EditorWorkflow {
    return JSON.parse(JSON.stringify(this.graph.serialize())) as EditorWorkflow;
  }

  scheduleCheck(): void {
    if (this.loading > 0 || this.scheduled) return;
    this.scheduled = true;
    setTimeout(() => {
      this.scheduled = false;
      if (this.loading > 0) return;
      const workflow = this.snapshot();
      for (const l of [...this.listeners]) l(workflow);
    }, 0);
  }

  nodeById(id: string | number): LGraphNode | undefined {
    return this.graph.getNodeById(id as never) ?? undefined;
  }

  nodes(): LGraphNode[] {
    return [...this.graph._nodes];
  }

  redraw(): void {
    this.canvas.setDirty(true, true);
  }

  /** Adds a node of `type` at the centre of the view (the library's click-to-add), or centred on a page point. */
  addNodeAtCenter(type: string, at?: { clientX: number; clientY: number }): LGraphNode | undefined {
    const node = LiteGraph.createNode(type);
    if (!node) return undefined;
    const rect = this.element.getBoundingClientRect();
    const point: [number, number] = at ? [at.clientX - rect.left, at.clientY - rect.top] : [rect.width / 2, rect.height / 2];
    const [x, y] = this.canvas.ds.convertCanvasToOffset(point);
    node.pos = [x - node.size[0] / 2, y - node.size[1] / 2];
    this.graph.add(node);
    this.canvas.selectNodes([node]);
    this.scheduleCheck();
    return node;
  }
}
