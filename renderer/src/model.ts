import { hasControlWidget, type ComboInputSpec, type InputSpec } from '../../nodes/spec.js';
import { orderWidgetValues } from '../../runtime/workflow/widget-order.js';
import type { EditorGroup, EditorInput, EditorLink, EditorNode, EditorOutput, EditorWorkflow } from '../../runtime/workflow/editor-schema.js';
import type { NodeLibrary } from './defs.js';
import { compareIds } from '../../runtime/executor/graph.js';

/**
 * The editor's own graph model: what undo/redo, persistence and queueing work on. Widget values are
 * kept by input name, so a node whose inputs are reordered or extended still gets the right values;
 * litegraph's positional `widgets_values` only exist at the edges (`toModel` / `toWorkflow`).
 * Derived or cosmetic view state is deliberately not part of it: the viewport (panning is not an
 * edit), litegraph's execution `order` (recomputed on every load) and drawing order (clicking a node
 * raises it), so none of them can become a phantom undo step.
 */
export interface ModelNode {
  id: number | string;
  type: string;
  title?: string;
  pos: [number, number];
  size: [number, number];
  flags: Record<string, unknown>;
  mode: number;
  inputs: EditorInput[];
  outputs: EditorOutput[];
  properties: Record<string, unknown>;
  /** Widget values by input name. */
  widgets: Record<string, unknown>;
  /** `control_after_generate` values by the input they control (seeds). */
  controls: Record<string, string>;
  /** `widgets_values` of a type the library does not know, carried through untouched. */
  rawWidgets?: unknown[] | Record<string, unknown>;
  /** Fields other editors and extensions wrote, kept for round trips. */
  extra: Record<string, unknown>;
}

export interface GraphModel {
  nodes: Record<string, ModelNode>;
  links: Record<string, EditorLink>;
  groups: EditorGroup[];
  lastNodeId: number | string;
  lastLinkId: number;
  config: Record<string, unknown>;
  extra: Record<string, unknown>;
}

export type Viewport = { scale: number; offset: [number, number] };

const KNOWN_NODE_FIELDS = new Set(['id', 'type', 'title', 'pos', 'size', 'flags', 'order', 'mode', 'inputs', 'outputs', 'properties', 'widgets_values']);

export function emptyModel(): GraphModel {
  return { nodes: {}, links: {}, groups: [], lastNodeId: 0, lastLinkId: 0, config: {}, extra: {} };
}

/** Names the positional values; a companion value is consumed only where it is really present. */
function readWidgets(lib: NodeLibrary, node: EditorNode): Pick<ModelNode, 'widgets' | 'controls' | 'rawWidgets'> {
  const def = lib.get(node.type);
  const values = node.widgets_values;
  if (!def) return { widgets: {}, controls: {}, ...(values !== undefined ? { rawWidgets: structuredClone(values) } : {}) };
  const widgets: Record<string, unknown> = {};
  const controls: Record<string, string> = {};
  const widgetInputs = def.inputs.filter((i) => i.widget);
  if (values && !Array.isArray(values)) {
    for (const input of widgetInputs) if (input.name in values) widgets[input.name] = values[input.name];
  } else {
    const ordered = orderWidgetValues(widgetInputs, values ?? []);
    for (const [name, value] of ordered.values) widgets[name] = value;
    for (const [name, mode] of ordered.controls) if (hasControlWidget(widgetInputs.find((i) => i.name === name)!.spec)) controls[name] = mode;
  }
  for (const input of widgetInputs) if (hasControlWidget(input.spec) && !(input.name in controls)) controls[input.name] = 'fixed';
  return { widgets, controls };
}

function defaultOf(spec: InputSpec): unknown {
  if ('default' in spec && spec.default !== undefined) return spec.default;
  if (spec.type === 'COMBO') {
    const options = (spec as ComboInputSpec).options;
    return Array.isArray(options) ? (options[0] ?? '') : '';
  }
  if (spec.type === 'INT' || spec.type === 'FLOAT') return (spec as { min?: number }).min ?? 0;
  if (spec.type === 'BOOLEAN') return false;
  return '';
}

export function toModel(workflow: EditorWorkflow, lib: NodeLibrary): GraphModel {
  const nodes: Record<string, ModelNode> = {};
  for (const node of workflow.nodes) {
    const id = String(node.id);
    const extra: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) if (!KNOWN_NODE_FIELDS.has(k) && v !== undefined) extra[k] = structuredClone(v);
    nodes[id] = {
      id: node.id,
      type: node.type,
      ...(node.title !== undefined ? { title: node.title } : {}),
      pos: [node.pos[0], node.pos[1]],
      size: [node.size[0], node.size[1]],
      flags: structuredClone(node.flags ?? {}),
      mode: node.mode ?? 0,
      inputs: structuredClone(node.inputs ?? []),
      outputs: structuredClone(node.outputs ?? []),
      properties: structuredClone(node.properties ?? {}),
      ...readWidgets(lib, node),
      extra,
    };
  }
  const { ds: _viewport, ...extra } = (workflow.extra ?? {}) as Record<string, unknown>;
  return {
    nodes,
    links: Object.fromEntries(workflow.links.map((l) => [String(l[0]), structuredClone(l)])),
    groups: structuredClone(workflow.groups ?? []),
    lastNodeId: workflow.last_node_id,
    lastLinkId: workflow.last_link_id,
    config: structuredClone(workflow.config ?? {}),
    extra: structuredClone(extra),
  };
}

/** `widgets_values` in the node class's widget order, defaults filling what the model lacks. */
export function widgetsValues(lib: NodeLibrary, node: ModelNode): unknown[] | Record<string, unknown> | undefined {
  const def = lib.get(node.type);
  if (!def) return node.rawWidgets === undefined ? undefined : structuredClone(node.rawWidgets);
  return lib.widgetLayout(node.type).map((slot) => {
    if (slot.control) return node.controls[slot.input] ?? 'fixed';
    return slot.name in node.widgets ? structuredClone(node.widgets[slot.name]) : defaultOf(def.inputByName.get(slot.name)!.spec);
  });
}

export function toWorkflow(model: GraphModel, lib: NodeLibrary, viewport?: Viewport): EditorWorkflow {
  const ids = Object.keys(model.nodes).sort((a, b) => compareIds(a, b));
  const nodes: EditorNode[] = ids.map((id, position) => {
    const n = model.nodes[id];
    const values = widgetsValues(lib, n);
    return {
      ...structuredClone(n.extra),
      id: n.id,
      type: n.type,
      ...(n.title !== undefined ? { title: n.title } : {}),
      pos: [n.pos[0], n.pos[1]],
      size: [n.size[0], n.size[1]],
      flags: structuredClone(n.flags),
      order: position,
      mode: n.mode,
      inputs: structuredClone(n.inputs),
      outputs: structuredClone(n.outputs),
      properties: structuredClone(n.properties),
      ...(values !== undefined ? { widgets_values: values } : {}),
    } as EditorNode;
  });
  return {
    last_node_id: model.lastNodeId,
    last_link_id: model.lastLinkId,
    nodes,
    links: Object.values(model.links)
      .map((l) => structuredClone(l))
      .sort((a, b) => a[0] - b[0]),
    groups: structuredClone(model.groups),
    config: structuredClone(model.config),
    extra: { ...structuredClone(model.extra), ...(viewport ? { ds: structuredClone(viewport) } : {}) },
    version: 0.4,
  };
}

/** Makes `target` deep-equal to `source` with the fewest writes, so immer records small patches. */
export function reconcile(target: Record<string, unknown> | unknown[], source: Record<string, unknown> | unknown[]): void {
  if (Array.isArray(target) && Array.isArray(source)) {
    for (let i = 0; i < source.length; i++) assignValue(target as unknown as Record<number, unknown>, i, source[i]);
    if (target.length > source.length) target.length = source.length;
    return;
  }
  const t = target as Record<string, unknown>;
  const s = source as Record<string, unknown>;
  for (const key of Object.keys(t)) if (!(key in s)) delete t[key];
  for (const key of Object.keys(s)) assignValue(t, key, s[key]);
}

function assignValue(target: Record<string | number, unknown>, key: string | number, value: unknown): void {
  const current = target[key];
  const bothArrays = Array.isArray(current) && Array.isArray(value);
  const bothObjects = isPlainObject(current) && isPlainObject(value);
  if (bothArrays || bothObjects) reconcile(current as Record<string, unknown>, value as Record<string, unknown>);
  else if (!Object.is(current, value)) target[key] = structuredCloneIfObject(value);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function structuredCloneIfObject<T>(v: T): T {
  return typeof v === 'object' && v !== null ? structuredClone(v) : v;
}
