import type { NodeDefinition, NodeRegistry } from '../nodes-api/registry.js';
import { hasControlWidget } from '../nodes-api/spec.js';
import { isLinkValue, type ApiPrompt } from './api-schema.js';
import { NODE_MODE, type EditorInput, type EditorLink, type EditorNode, type EditorOutput, type EditorWorkflow } from './editor-schema.js';

export interface ApiToEditorOptions {
  /** Horizontal distance between depth columns. */
  columnWidth?: number;
  /** Vertical gap between nodes in a column. */
  rowGap?: number;
  origin?: [number, number];
}

const NODE_WIDTH = 320;
const SLOT_HEIGHT = 22;
const WIDGET_HEIGHT = 26;
const TITLE_HEIGHT = 30;
const TEXT_BOX_EXTRA = 54;

interface PendingLink {
  from: string;
  slot: number;
  to: string;
  input: string;
}

/** Depth = longest path from a source, so every node sits to the right of everything it reads from. */
function depths(prompt: ApiPrompt): Map<string, number> {
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const visit = (id: string): number => {
    const known = depth.get(id);
    if (known !== undefined) return known;
    if (visiting.has(id) || !prompt[id]) return 0; // cycles and dangling links are validation's problem
    visiting.add(id);
    let d = 0;
    for (const value of Object.values(prompt[id].inputs)) {
      if (isLinkValue(value) && prompt[String(value[0])]) d = Math.max(d, visit(String(value[0])) + 1);
    }
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  for (const id of Object.keys(prompt)) visit(id);
  return depth;
}

function numericIds(prompt: ApiPrompt): Map<string, number> {
  const ids = Object.keys(prompt);
  const allNumeric = ids.every((id) => /^[1-9]\d{0,8}$/.test(id));
  // The editor wants integer ids; keep the prompt's own when it already has them so errors still line up.
  return new Map(ids.map((id, i) => [id, allNumeric ? Number(id) : i + 1]));
}

const IMAGE_NODE_HEIGHT = 300;

function widgetValues(def: NodeDefinition, inputs: Record<string, unknown>): unknown[] {
  const values: unknown[] = [];
  for (const input of def.inputs) {
    if (!input.widget) continue;
    const value = inputs[input.name];
    values.push(value === undefined || isLinkValue(value) ? ('default' in input.spec ? input.spec.default ?? null : null) : value);
    // "fixed": the prompt already pins the exact seed, so re-queueing from the editor must not change it.
    if (hasControlWidget(input.spec)) values.push('fixed');
  }
  return values;
}

/**
 * API prompt → editor workflow, so a prompt (from a PNG or a script) can be opened and edited.
 * Layout is columns by depth, left to right; within a column nodes are stacked in id order.
 */
export function apiToEditor(prompt: ApiPrompt, registry: NodeRegistry, options: ApiToEditorOptions = {}): EditorWorkflow {
  const columnWidth = options.columnWidth ?? NODE_WIDTH + 80;
  const rowGap = options.rowGap ?? 40;
  const [originX, originY] = options.origin ?? [50, 50];
  const idMap = numericIds(prompt);
  const depth = depths(prompt);
  const order = Object.keys(prompt).sort((a, b) => depth.get(a)! - depth.get(b)! || idMap.get(a)! - idMap.get(b)!);

  const pending: PendingLink[] = [];
  const nodes = new Map<string, EditorNode>();
  const columnY = new Map<number, number>();
  const unknown = new Set<string>();

  order.forEach((id, position) => {
    const apiNode = prompt[id];
    const def = registry.get(apiNode.class_type);
    const inputs: EditorInput[] = [];
    const outputs: EditorOutput[] = [];
    let values: unknown[];
    if (def) {
      // Link-only inputs first, in spec order, then widgets that are fed by a link (the editor's converted widgets).
      for (const input of def.inputs) {
        const value = apiNode.inputs[input.name];
        if (!input.widget) inputs.push({ name: input.name, type: input.spec.type, link: null });
        else if (isLinkValue(value)) inputs.push({ name: input.name, type: input.spec.type, link: null, widget: { name: input.name } });
      }
      def.outputs.forEach((o, slot) => outputs.push({ name: o.name, type: o.type, links: [], slot_index: slot }));
      values = widgetValues(def, apiNode.inputs);
    } else {
      unknown.add(id);
      values = [];
      for (const [name, value] of Object.entries(apiNode.inputs)) {
        if (isLinkValue(value)) inputs.push({ name, type: '*', link: null });
        else values.push(value);
      }
    }
    for (const [name, value] of Object.entries(apiNode.inputs)) {
      if (isLinkValue(value) && prompt[String(value[0])]) pending.push({ from: String(value[0]), slot: value[1], to: id, input: name });
    }

    const rows = Math.max(inputs.length, outputs.length, 1);
    // A multiline text box is drawn a few lines tall: without its room the next node in the column covers it.
    const textBoxes = def ? def.inputs.filter((i) => i.widget && (i.spec as { multiline?: boolean }).multiline && !isLinkValue(apiNode.inputs[i.name])).length : 0;
    const base = TITLE_HEIGHT + rows * SLOT_HEIGHT + values.length * WIDGET_HEIGHT + textBoxes * TEXT_BOX_EXTRA;
    // Output nodes grow to show their images once a run finishes: leave them that room from the start.
    const size: [number, number] = [NODE_WIDTH, def?.outputNode ? Math.max(base, IMAGE_NODE_HEIGHT) : base];
    const column = depth.get(id)!;
    const y = columnY.get(column) ?? originY;
    columnY.set(column, y + size[1] + rowGap);
    const node: EditorNode = {
      id: idMap.get(id)!,
      type: apiNode.class_type,
      pos: [originX + column * columnWidth, y],
      size,
      flags: {},
      order: position,
      mode: NODE_MODE.ALWAYS,
      inputs,
      outputs,
      properties: { 'Node name for S&R': apiNode.class_type },
      widgets_values: values,
    };
    const title = apiNode._meta?.title;
    if (title && title !== (def?.displayName ?? apiNode.class_type)) node.title = title;
    nodes.set(id, node);
  });

  const links: EditorLink[] = [];
  for (const p of pending) {
    const from = nodes.get(p.from)!;
    const to = nodes.get(p.to)!;
    const targetSlot = to.inputs.findIndex((i) => i.name === p.input);
    if (targetSlot < 0) continue;
    // Unknown producers get output slots on demand, typed by what the consumer expects.
    while (from.outputs.length <= p.slot) from.outputs.push({ name: '*', type: '*', links: [], slot_index: from.outputs.length });
    // Whichever end knows its type names the other: unknown nodes get their slots typed from known neighbours.
    const output = from.outputs[p.slot];
    const input = to.inputs[targetSlot];
    if (unknown.has(p.from) && output.type === '*') output.type = input.type;
    if (unknown.has(p.to) && input.type === '*') input.type = output.type;
    const id = links.length + 1;
    links.push([id, from.id, p.slot, to.id, targetSlot, output.type]);
    to.inputs[targetSlot].link = id;
    (from.outputs[p.slot].links ??= []).push(id);
  }

  const nodeList = [...nodes.values()];
  return {
    last_node_id: Math.max(0, ...nodeList.map((n) => Number(n.id))),
    last_link_id: links.length,
    nodes: nodeList,
    links,
    groups: [],
    config: {},
    extra: { ds: { scale: 1, offset: [0, 0] } },
    version: 0.4,
  };
}
