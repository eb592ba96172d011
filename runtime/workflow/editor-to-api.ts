import type { NodeDefinition, NodeRegistry } from '../nodes-api/registry.js';
import type { ApiNode, ApiPrompt } from './api-schema.js';
import { NODE_MODE, type EditorLink, type EditorNode, type EditorWorkflow } from './editor-schema.js';
import { expandGroupNodes } from './group-nodes.js';
import { orderWidgetValues } from './widget-order.js';

/** Editor-only nodes: they shape the canvas but never reach the server. */
export const VIRTUAL_NODE_TYPES: ReadonlySet<string> = new Set(['Note', 'MarkdownNote', 'Reroute', 'PrimitiveNode']);

export { CONTROL_WIDGET_VALUES } from './widget-order.js';

export interface EditorToApiResult {
  prompt: ApiPrompt;
  /** Things a user may want to know about (unknown types, short widget lists); none of them stop conversion. */
  warnings: string[];
}

type Source = { kind: 'node'; id: string; slot: number } | { kind: 'value'; value: unknown };

class LinkResolver {
  private readonly nodes: Map<string, EditorNode>;
  private readonly links: Map<number, EditorLink>;

  constructor(workflow: EditorWorkflow) {
    this.nodes = new Map(workflow.nodes.map((n) => [String(n.id), n]));
    this.links = new Map(workflow.links.map((l) => [l[0], l]));
  }

  /**
   * Walks a link back to the node that really produces the value: through reroutes, around bypassed
   * nodes (to their first input of the same type, preferring the one at the same slot, as the editor does),
   * and into primitive nodes, whose widget value becomes a literal. Muted or dangling sources yield nothing.
   */
  resolve(linkId: number, seen = new Set<number>()): Source | undefined {
    const link = this.links.get(linkId);
    if (!link || seen.has(linkId)) return undefined;
    seen.add(linkId);
    const [, fromId, fromSlot, , , type] = link;
    const from = this.nodes.get(String(fromId));
    if (!from || from.mode === NODE_MODE.NEVER) return undefined;
    if (from.type === 'Reroute') {
      const upstream = from.inputs[0]?.link;
      return upstream == null ? undefined : this.resolve(upstream, seen);
    }
    if (from.type === 'PrimitiveNode') {
      const values = from.widgets_values;
      return Array.isArray(values) && values.length > 0 ? { kind: 'value', value: values[0] } : undefined;
    }
    if (from.mode === NODE_MODE.BYPASS) {
      const sameSlot = from.inputs[fromSlot];
      const candidates = [sameSlot, ...from.inputs].filter((i) => i && i.link != null && sameType(i.type, type));
      for (const input of candidates) {
        const found = this.resolve(input!.link!, seen);
        if (found) return found;
      }
      return undefined;
    }
    return { kind: 'node', id: String(from.id), slot: fromSlot };
  }
}

function sameType(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function isActive(node: EditorNode): boolean {
  return node.mode !== NODE_MODE.NEVER && node.mode !== NODE_MODE.BYPASS;
}

/** Pairs `widgets_values` with widget input names (see orderWidgetValues for the seed companion rules). */
export function assignWidgetValues(def: NodeDefinition, widgetsValues: EditorNode['widgets_values']): Map<string, unknown> {
  if (widgetsValues === undefined) return new Map();
  if (!Array.isArray(widgetsValues)) {
    const assigned = new Map<string, unknown>();
    for (const input of def.inputs) if (input.widget && input.name in widgetsValues) assigned.set(input.name, widgetsValues[input.name]);
    return assigned;
  }
  return orderWidgetValues(def.inputs.filter((i) => i.widget), widgetsValues).values;
}

function linkedInput(node: EditorNode, name: string): number | undefined {
  const slot = node.inputs.find((i) => i.widget?.name === name) ?? node.inputs.find((i) => i.name === name);
  return slot?.link ?? undefined;
}

function convertKnown(node: EditorNode, def: NodeDefinition, resolver: LinkResolver, warnings: string[]): ApiNode['inputs'] {
  const inputs: ApiNode['inputs'] = {};
  const widgetValues = assignWidgetValues(def, node.widgets_values);
  for (const input of def.inputs) {
    const linkId = linkedInput(node, input.name);
    if (linkId !== undefined) {
      const source = resolver.resolve(linkId);
      if (source?.kind === 'node') inputs[input.name] = [source.id, source.slot];
      else if (source?.kind === 'value') inputs[input.name] = source.value;
      // An unresolvable link (muted source) leaves the input missing; validation names it.
      continue;
    }
    if (!input.widget) continue;
    if (widgetValues.has(input.name)) {
      inputs[input.name] = widgetValues.get(input.name);
    } else if ('default' in input.spec && input.spec.default !== undefined) {
      inputs[input.name] = input.spec.default;
      // Optional widgets are often newer than the file (ComfyUI's own workflows never hold ours): no warning.
      if (input.required) warnings.push(`node ${node.id} (${node.type}): no saved value for "${input.name}", using default`);
    }
  }
  return inputs;
}

/** Unknown types still go through so validation can report them; only their links can be named. */
function convertUnknown(node: EditorNode, resolver: LinkResolver): ApiNode['inputs'] {
  const inputs: ApiNode['inputs'] = {};
  for (const slot of node.inputs) {
    if (slot.link == null) continue;
    const source = resolver.resolve(slot.link);
    if (source?.kind === 'node') inputs[slot.widget?.name ?? slot.name] = [source.id, source.slot];
    else if (source?.kind === 'value') inputs[slot.widget?.name ?? slot.name] = source.value;
  }
  return inputs;
}

/** Editor workflow → API prompt, the equivalent of the frontend's graphToPrompt. */
export function editorToApi(saved: EditorWorkflow, registry: NodeRegistry): EditorToApiResult {
  const warnings: string[] = [];
  const workflow = expandGroupNodes(saved, registry, warnings);
  const resolver = new LinkResolver(workflow);
  const prompt: ApiPrompt = {};
  const ordered = [...workflow.nodes].sort((a, b) => a.order - b.order);
  for (const node of ordered) {
    if (!isActive(node)) continue;
    const def = registry.get(node.type);
    if (!def && VIRTUAL_NODE_TYPES.has(node.type)) continue;
    let inputs: ApiNode['inputs'];
    if (def) {
      inputs = convertKnown(node, def, resolver, warnings);
    } else {
      inputs = convertUnknown(node, resolver);
      warnings.push(`node ${node.id}: unknown type "${node.type}", its widget values cannot be mapped`);
    }
    const title = node.title ?? def?.displayName ?? node.type;
    prompt[String(node.id)] = { class_type: node.type, inputs, _meta: { title } };
  }
  return { prompt, warnings };
}
