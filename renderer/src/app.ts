import { LGraphCanvas, LiteGraph, type LGraphNode } from '@comfyorg/litegraph';
import { searchNodes } from './search.js';
import { editorToApi } from '../../runtime/workflow/editor-to-api.js';
import type { EditorWorkflow } from '../../runtime/workflow/editor-schema.js';
import { ApiClient } from './api.js';
import { applyControlsAfterQueue } from './controls.js';
import { NodeLibrary } from './defs.js';
import { toast } from './dom.js';
import { ExecutionView } from './execution.js';
import { downloadText, loadWorkflowFile, pickFile } from './files.js';
import { LibraryPanel } from './library.js';
import { toModel, toWorkflow, type GraphModel } from './model.js';
import { registerNodeTypes, registerTypeColors, runState } from './node-types.js';
import { SessionStore } from './persist.js';
import { QueuePanel } from './queue-panel.js';
import { ServerSocket } from './socket.js';
import { UndoableStore } from './store.js';
import { openTextEditor } from './text-editor.js';
import { Toolbar } from './toolbar.js';
import { missingNodeTypes, registerFrontendNodes } from './frontend-nodes.js';
import type { MultilineWidget } from './widgets.js';
import { GraphView } from './view.js';
import { ImageViewer } from './image-viewer.js';
import { MODEL_DRAG_TYPE, ModelsPanel, type ModelTarget } from './models-panel.js';
import { WorkflowsPanel } from './workflows-panel.js';
import { button } from './dom.js';

export interface AppElements {
  canvas: HTMLCanvasElement;
  toolbar: HTMLElement;
  library: HTMLElement;
  queue: HTMLElement;
  errors: HTMLElement;
  livePreview?: HTMLElement;
  tabs?: HTMLElement;
  workflows?: HTMLElement;
  models?: HTMLElement;
}

function newClientId(): string {
  const stored = sessionStorage.getItem('resflow.clientId');
  if (stored) return stored;
  const id = crypto.randomUUID().replace(/-/g, '');
  sessionStorage.setItem('resflow.clientId', id);
  return id;
}

/** The editor: wires the node library, the canvas view, the undoable document and the server. */
export class EditorApp {
  readonly api: ApiClient;
  readonly socket: ServerSocket;
  readonly view: GraphView;
  readonly store: UndoableStore<GraphModel>;
  readonly exec: ExecutionView;
  readonly session = new SessionStore();
  readonly viewer = new ImageViewer();
  workflowsPanel?: WorkflowsPanel;
  modelsPanel?: ModelsPanel;
  private readonly toolbar: Toolbar;
  private readonly queuePanel: QueuePanel;
  private name = 'workflow';

  static async start(elements: AppElements): Promise<EditorApp> {
    const api = new ApiClient(newClientId());
    const lib = new NodeLibrary(await api.objectInfo());
    const app = new EditorApp(elements, api, lib);
    await app.openInitialWorkflow();
    return app;
  }

  private constructor(
    elements: AppElements,
    api: ApiClient,
    readonly lib: NodeLibrary,
  ) {
    this.api = api;
    const hooks = {
      changed: () => this.view.scheduleCheck(),
      editText: (node: LGraphNode, widget: MultilineWidget) => openTextEditor(this.view, node, widget, () => this.view.scheduleCheck()),
      upload: (node: LGraphNode, combo: { value: unknown; options: { values?: unknown } }) => void this.uploadInto(node, combo),
      inputImageChanged: (node: LGraphNode, name: string) => this.showInputImage(node, name),
    };
    registerNodeTypes(lib, hooks);
    registerFrontendNodes(hooks);
    this.view = new GraphView(elements.canvas);
    registerTypeColors(lib, this.view.canvas as never, LGraphCanvas.link_type_colors);
    this.store = new UndoableStore<GraphModel>(toModel(this.view.snapshot(), lib));
    this.exec = new ExecutionView(this.view, api, elements.errors, elements.livePreview);
    this.toolbar = new Toolbar(elements.toolbar, {
      open: () => void this.open(),
      save: () => void this.save(false),
      saveAs: () => void this.save(true),
      exportApi: () => this.exportApi(),
      loadDefault: () => void this.loadDefault(),
      undo: () => this.undo(),
      redo: () => this.redo(),
      queue: (front) => void this.queue(front),
      interrupt: () => void this.interrupt(),
    });
    this.queuePanel = new QueuePanel(elements.queue, api, (wf) => this.loadWorkflow(wf, 'load from history'));
    new LibraryPanel(elements.library, lib, (type) => this.view.addNodeAtCenter(type));
    this.bindSidePanels(elements);
    this.bindCanvasSearch();
    this.bindImageViewer(elements.queue);

    this.view.onWorkflowChanged((workflow) => this.store.commit('edit', toModel(workflow, lib)));
    this.store.subscribe((state, change) => {
      if (change.kind === 'undo' || change.kind === 'redo') {
        this.view.load(toWorkflow(state, lib), this.view.viewport());
        this.exec.reapply();
      }
      this.toolbar.setUndoState(this.store.canUndo, this.store.canRedo);
      this.session.save(() => this.currentWorkflow(), this.name);
    });
    this.toolbar.setUndoState(false, false);

    this.socket = new ServerSocket(api.clientId);
    this.socket.onConnection((up) => {
      this.toolbar.setConnected(up);
      if (up) void this.queuePanel.refresh();
    });
    this.socket.onMessage((msg) => {
      this.exec.handle(msg);
      if (msg.type === 'status') {
        this.toolbar.setRemaining(msg.data.status.exec_info.queue_remaining);
        void this.queuePanel.refresh();
      }
    });
    this.exec.onStatus((s) => this.toolbar.setRun(s));
    this.socket.connect();
    this.bindKeys();
    this.bindDrop();
    window.addEventListener('beforeunload', () => this.session.saveNow(this.currentWorkflow(), this.name));
    window.resflowShell?.onMenu((command) => {
      if (command === 'open') void this.open();
      else if (command === 'save') void this.save(false);
      else if (command === 'save-as') void this.save(true);
      else if (command === 'queue') void this.queue(false);
      else if (command === 'interrupt') void this.interrupt();
    });
  }

  /** The session's graph if there is one, else the default workflow. */
  private async openInitialWorkflow(): Promise<void> {
    const restored = this.session.restore();
    if (restored) {
      this.loadWorkflow(restored.workflow, 'restore session', restored.name, false, false);
      return;
    }
    await this.loadDefault(false);
  }

  async loadDefault(undoable = true): Promise<void> {
    try {
      this.loadWorkflow(await this.api.defaultWorkflow(), 'load default workflow', 'shapes-resadapter-256', undoable);
    } catch (e) {
      toast(`No default workflow: ${(e as Error).message}`, 'error');
    }
  }

  /** Replaces the canvas with `workflow`, as one undoable step unless it starts the session. */
  loadWorkflow(workflow: EditorWorkflow, label = 'load', name?: string, undoable = true, fit = true, relayout = false): void {
    const missing = missingNodeTypes(workflow.nodes.map((n) => n.type), this.lib);
    if (missing.length > 0) toast(`This workflow uses node types ResFlow does not have: ${missing.join(', ')}. They are kept but cannot run.`, 'error');
    this.view.load(workflow);
    if (relayout) this.view.relayoutColumns();
    if (fit) this.view.fitToContent();
    if (name) {
      this.name = name;
      this.toolbar.setName(name);
    }
    this.exec.clearAllErrors();
    const model = toModel(this.view.snapshot(), this.lib);
    if (undoable) this.store.commit(label, model);
    else this.store.reset(label, model);
    this.exec.reapply();
  }

  currentWorkflow(): EditorWorkflow {
    return toWorkflow(this.store.state, this.lib, this.view.viewport());
  }

  undo(): void {
    this.flush();
    if (!this.store.undo()) toast('Nothing to undo');
  }

  redo(): void {
    this.flush();
    if (!this.store.redo()) toast('Nothing to redo');
  }

  /** Commits what the canvas shows now, so an undo right after a gesture undoes that gesture. */
  private flush(): void {
    this.store.commit('edit', toModel(this.view.snapshot(), this.lib));
  }

  async queue(front = false): Promise<void> {
    this.flush();
    const workflow = this.currentWorkflow();
    const { prompt } = editorToApi(workflow, this.lib.registry);
    let result;
    try {
      result = await this.api.queuePrompt(prompt, workflow, front);
    } catch (e) {
      toast(`Could not queue: ${(e as Error).message}`, 'error');
      return;
    }
    if (!result.ok) {
      this.exec.showValidationErrors(result.error, result.nodeErrors);
      return;
    }
    if (Object.keys(result.nodeErrors).length > 0) this.exec.acceptedWithErrors(result.promptId, result.nodeErrors);
    else this.exec.clearAllErrors();
    toast(`Queued ${result.promptId.slice(0, 8)}`, 'success', 1500);
    if (applyControlsAfterQueue(this.view.nodes())) {
      this.view.redraw();
      this.store.commit('control after generate', toModel(this.view.snapshot(), this.lib));
    }
    void this.queuePanel.refresh();
  }

  async interrupt(): Promise<void> {
    await this.api.interrupt();
  }

  async open(): Promise<void> {
    if (window.resflowShell) {
      const file = await window.resflowShell.openWorkflow();
      if (file) await this.openFile(file.name, file.data);
      return;
    }
    const file = await pickFile('.json,.png,application/json,image/png');
    if (file) await this.openFile(file.name, await file.arrayBuffer());
  }

  async openFile(name: string, data: ArrayBuffer): Promise<void> {
    try {
      const loaded = await loadWorkflowFile(name, data, this.lib);
      this.loadWorkflow(loaded.workflow, `open ${name}`, name.replace(/\.(json|png)$/i, ''), true, true, loaded.format === 'api');
      toast(`Loaded ${name}${loaded.format === 'api' ? ' (API prompt, laid out automatically)' : ''}`, 'success');
    } catch (e) {
      toast(`Could not load ${name}: ${(e as Error).message}`, 'error');
    }
  }

  async save(saveAs: boolean): Promise<void> {
    const text = JSON.stringify(this.currentWorkflow(), null, 2);
    if (window.resflowShell) {
      const path = await window.resflowShell.saveWorkflow(`${this.name}.json`, text, saveAs);
      if (path) toast(`Saved ${path}`, 'success');
      return;
    }
    downloadText(`${this.name}.json`, text);
  }

  exportApi(): void {
    const { prompt } = editorToApi(this.currentWorkflow(), this.lib.registry);
    downloadText(`${this.name}.api.json`, JSON.stringify(prompt, null, 2));
  }

  private async uploadInto(node: LGraphNode, combo: { value: unknown; options: { values?: unknown } }): Promise<void> {
    const file = await pickFile('image/png,image/jpeg,image/webp,image/gif');
    if (!file) return;
    try {
      const ref = await this.api.uploadImage(file);
      const name = ref.subfolder ? `${ref.subfolder}/${ref.filename}` : ref.filename;
      const values = Array.isArray(combo.options.values) ? (combo.options.values as string[]) : [];
      if (!values.includes(name)) values.push(name);
      combo.options.values = values;
      combo.value = name;
      this.showInputImage(node, (combo as unknown as { name: string }).name);
      this.view.scheduleCheck();
    } catch (e) {
      toast(`Upload failed: ${(e as Error).message}`, 'error');
    }
  }

  private showInputImage(node: LGraphNode, comboName: string): void {
    const value = node.widgets?.find((w: { name: string }) => w.name === comboName)?.value;
    if (typeof value !== 'string' || !value) return;
    const slash = value.lastIndexOf('/');
    const url = this.api.viewUrl({ filename: value.slice(slash + 1), subfolder: slash > 0 ? value.slice(0, slash) : '', type: 'input' });
    const img = new Image();
    img.onload = () => this.view.redraw();
    img.src = url;
    runState(node).images = [img];
  }

  /** Nodes, Workflows and Models share the left sidebar as tabs. */
  private bindSidePanels(elements: AppElements): void {
    if (!elements.tabs || !elements.workflows || !elements.models) return;
    this.workflowsPanel = new WorkflowsPanel(elements.workflows, {
      openFile: (name, data) => this.openFile(name, data),
      openWorkflow: (wf, name) => this.loadWorkflow(wf, `open ${name}`, name),
      current: () => ({ workflow: this.currentWorkflow(), name: this.name }),
    });
    this.modelsPanel = new ModelsPanel(elements.models, this.lib.info, (target) => this.addModelNode(target));
    const pages = { nodes: elements.library, workflows: elements.workflows, models: elements.models };
    const tabs = Object.entries(pages).map(([key, page]) => {
      const tab = button(key[0]!.toUpperCase() + key.slice(1), () => {
        for (const [k, p] of Object.entries(pages)) p.hidden = k !== key;
        for (const t of tabs) t.classList.toggle('active', t === tab);
        if (key === 'workflows') void this.workflowsPanel!.refresh();
        if (key === 'models') void this.modelsPanel!.refresh();
      }, { 'data-tab': key, class: key === 'nodes' ? 'active' : '' });
      return tab;
    });
    elements.tabs.replaceChildren(...tabs);
    const canvas = this.view.element;
    canvas.addEventListener('dragover', (e) => {
      if (![...(e.dataTransfer?.types ?? [])].includes(MODEL_DRAG_TYPE)) return;
      e.preventDefault();
      e.dataTransfer!.dropEffect = 'copy';
    });
    canvas.addEventListener('drop', (e) => {
      const raw = e.dataTransfer?.getData(MODEL_DRAG_TYPE);
      if (!raw) return;
      e.preventDefault();
      this.addModelNode(JSON.parse(raw) as ModelTarget, { clientX: e.clientX, clientY: e.clientY });
    });
  }

  /**
   * litegraph's double-click search box ranks with the library's search (display names, aliases, typos);
   * a search opened by releasing a link keeps only nodes with a matching slot type.
   */
  private bindCanvasSearch(): void {
    const entries = this.lib.names().map((name) => {
      const def = this.lib.get(name)!;
      return { name, display: def.displayName, category: def.spec.category, description: def.spec.description ?? '' };
    });
    const canvas = this.view.canvas as unknown as { onSearchBox?: (helper: HTMLElement, str: string) => string[]; search_box?: HTMLElement };
    canvas.onSearchBox = (_helper, str) => {
      const slotFilter = (cls: string, table: Record<string, { nodes?: string[] } | undefined>) => {
        const value = canvas.search_box?.querySelector<HTMLSelectElement>(cls)?.value;
        return value ? new Set(table[value]?.nodes ?? []) : undefined;
      };
      const registry = LiteGraph as unknown as { registered_slot_in_types: Record<string, { nodes?: string[] }>; registered_slot_out_types: Record<string, { nodes?: string[] }> };
      const ins = slotFilter('.slot_in_type_filter', registry.registered_slot_in_types);
      const outs = slotFilter('.slot_out_type_filter', registry.registered_slot_out_types);
      return searchNodes(entries, str, 30)
        .map((e) => e.name)
        .filter((n) => (!ins || ins.has(n)) && (!outs || outs.has(n)));
    };
  }

  /** Creates the node that loads a model file, with the file selected. */
  addModelNode(target: ModelTarget, at?: { clientX: number; clientY: number }): void {
    const node = this.view.addNodeAtCenter(target.nodeType, at);
    if (!node) return void toast(`No node type ${target.nodeType}`, 'error');
    const widget = node.widgets?.find((w: { name: string }) => w.name === target.input);
    if (widget) widget.value = target.value;
    this.view.redraw();
    this.view.scheduleCheck();
  }

  /** Output images open in the viewer: thumbnails in the history, and images on nodes (double click). */
  private bindImageViewer(queue: HTMLElement): void {
    queue.addEventListener('click', (e) => {
      const thumb = (e.target as HTMLElement).closest('.history-thumb') as HTMLImageElement | null;
      if (!thumb) return;
      const all = Array.from(thumb.closest('.history-item')?.querySelectorAll<HTMLImageElement>('.history-thumb') ?? []);
      this.viewer.open(all.map((img) => ({ src: img.src, label: img.alt })), all.indexOf(thumb));
    });
    this.view.canvas.onNodeDblClicked = (node: LGraphNode) => {
      // Saved outputs only (served by /view), not the sampler's live preview.
      const outputs = (id: string) => this.exec.nodeImages(id).filter((src) => src.includes('/view?'));
      const own = outputs(String(node.id));
      if (own.length === 0) return;
      const images = this.view.nodes().flatMap((n) => outputs(String(n.id)).map((src) => ({ src, label: `${n.title} #${n.id}` })));
      const first = images.findIndex((i) => i.src === own[0]);
      this.viewer.open(images, Math.max(0, first));
    };
  }

  private bindKeys(): void {
    window.addEventListener('keydown', (e) => {
      const target = e.target as HTMLElement | null;
      if (target && (target.tagName === 'INPUT' || target.tagName === 'TEXTAREA' || target.isContentEditable)) return;
      const mod = e.ctrlKey || e.metaKey;
      if (!mod) return;
      const key = e.key.toLowerCase();
      // In the desktop shell these shortcuts are menu accelerators; handling them here too would run them twice.
      if (window.resflowShell && (key === 's' || key === 'o' || key === 'enter')) return;
      let handled = true;
      if (key === 'z' && !e.shiftKey) this.undo();
      else if ((key === 'z' && e.shiftKey) || key === 'y') this.redo();
      else if (key === 'enter') void this.queue(e.shiftKey);
      else if (key === 's') void this.save(e.shiftKey);
      else if (key === 'o') void this.open();
      else handled = false;
      if (handled) {
        e.preventDefault();
        e.stopPropagation();
      }
    });
  }

  private bindDrop(): void {
    const hasFiles = (e: DragEvent) => [...(e.dataTransfer?.types ?? [])].includes('Files');
    document.addEventListener('dragover', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      e.dataTransfer!.dropEffect = 'copy';
    }, true);
    document.addEventListener('drop', (e) => {
      const file = e.dataTransfer?.files?.[0];
      if (!file) return;
      e.preventDefault();
      e.stopPropagation();
      void file.arrayBuffer().then((data) => this.openFile(file.name, data));
    }, true);
  }
}
