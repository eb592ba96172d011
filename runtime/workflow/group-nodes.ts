import { z } from 'zod';
import type { NodeRegistry } from '../nodes-api/registry.js';
import type { InputSpec } from '../nodes-api/spec.js';
import { NODE_MODE, editorNodeSchema, type EditorLink, type EditorNode, type EditorWorkflow } from './editor-schema.js';
import { orderWidgetValues, type WidgetSlot } from './widget-order.js';

/**
 * ComfyUI's legacy group nodes: `extra.groupNodes[name]` holds a clipboard copy of the inner nodes and
 * their links, and each instance on the canvas is a node of type `workflow/<name>` (`workflow><name>` in
 * newer frontends) whose sockets and widgets are the inner nodes' unconnected ones, in inner-node order.
 * The server never sees group nodes: the frontend expands them into their inner nodes when it builds a
 * prompt, with ids `<instance>:<index>`. This module does the same on the workflow, before conversion.
 */

const groupLinkSchema = z.array(z.unknown()).refine((l) => l.length >= 4, 'a group link needs [from, slot, to, slot]');
const groupDataSchema = z.looseObject({
  nodes: z.array(z.looseObject({ type: z.string().min(1) })),
  links: z.array(groupLinkSchema).default([]),
  external: z.array(z.array(z.unknown())).default([]),
});
type GroupData = z.output<typeof groupDataSchema>;
type InnerNode = GroupData['nodes'][number];

const PRIMITIVE_VALUE_SPEC: InputSpec = { type: 'INT', control_after_generate: true };

interface SlotRef {
  node: number;
  slot: number;
}

interface GroupWidget extends WidgetSlot {
  node: number;
  /** The inner input it sets; for a primitive node, its single value. */
  input: string | null;
}

/** What an instance's positional sockets and widgets mean, worked out once per group definition. */
interface GroupPlan {
  inputs: SlotRef[];
  outputs: SlotRef[];
  widgets: GroupWidget[];
  internal: Array<{ from: SlotRef; to: SlotRef; type: unknown }>;
}

const GROUP_TYPE = /^workflow[/>](.+)$/;

function slotIndex(value: unknown): number | undefined {
  const n = typeof value === 'string' ? Number(value) : value;
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 ? n : undefined;
}

function innerInputs(node: InnerNode): Array<{ name?: unknown; widget?: { name?: unknown } }> {
  return Array.isArray(node.inputs) ? (node.inputs as Array<{ name?: unknown; widget?: { name?: unknown } }>) : [];
}

function planGroup(name: string, data: GroupData, registry: NodeRegistry, warnings: string[]): GroupPlan {
  const internal: GroupPlan['internal'] = [];
  const linkedTo = new Set<string>();
  const linkedFrom = new Set<string>();
  for (const link of data.links) {
    const [from, fromSlot, to, toSlot] = link.map(slotIndex);
    if (from === undefined || fromSlot === undefined || to === undefined || toSlot === undefined) continue;
    internal.push({ from: { node: from, slot: fromSlot }, to: { node: to, slot: toSlot }, type: link[5] ?? link[4] });
    linkedTo.add(`${to}:${toSlot}`);
    linkedFrom.add(`${from}:${fromSlot}`);
  }
  const external = new Set(data.external.map((e) => `${slotIndex(e[0])}:${slotIndex(e[1])}`));
  const isInternalOutput = (node: number, slot: number) => linkedFrom.has(`${node}:${slot}`) && !external.has(`${node}:${slot}`);

  const plan: GroupPlan = { inputs: [], outputs: [], widgets: [], internal };
  const convertedLater: Array<() => void> = [];
  data.nodes.forEach((node, index) => {
    if (node.type === 'PrimitiveNode') {
      if (!data.links.some((l) => slotIndex(l[0]) === index)) return;
      plan.widgets.push({ node: index, input: null, name: `${index}:value`, spec: PRIMITIVE_VALUE_SPEC });
      return;
    }
    if (node.type === 'Reroute') {
      if (!linkedTo.has(`${index}:0`)) plan.inputs.push({ node: index, slot: 0 });
      if (!isInternalOutput(index, 0)) plan.outputs.push({ node: index, slot: 0 });
      return;
    }
    const def = registry.get(node.type);
    if (!def) {
      warnings.push(`group node "${name}": inner node ${index} has unknown type "${node.type}"`);
      return;
    }
    const sockets = def.inputs.filter((i) => !i.widget);
    const slots = innerInputs(node);
    const converted = def.inputs
      .filter((i) => i.widget)
      .map((input) => ({ input, at: slots.findIndex((s) => s.widget?.name === input.name) }));
    for (const { input, at } of converted) {
      if (at < 0) plan.widgets.push({ node: index, input: input.name, name: `${index}:${input.name}`, spec: input.spec });
    }
    sockets.forEach((_, slot) => {
      if (!linkedTo.has(`${index}:${slot}`)) plan.inputs.push({ node: index, slot });
    });
    // Widgets turned into sockets come after every node's own sockets, in the order they were converted.
    const socketWidgets = converted.filter((c) => c.at >= 0).sort((a, b) => a.at - b.at);
    convertedLater.push(() =>
      socketWidgets.forEach(({ input }, k) => {
        const slot = sockets.length + k;
        if (linkedTo.has(`${index}:${slot}`)) return;
        plan.widgets.push({ node: index, input: input.name, name: `${index}:${input.name}`, spec: input.spec });
        plan.inputs.push({ node: index, slot });
      }),
    );
    def.outputs.forEach((_, slot) => {
      if (!isInternalOutput(index, slot)) plan.outputs.push({ node: index, slot });
    });
  });
  for (const later of convertedLater) later();
  return plan;
}

/** The inner node's own widget values by name, so single values can be replaced. */
function namedWidgets(node: InnerNode, registry: NodeRegistry): Record<string, unknown> {
  const def = registry.get(node.type);
  const values = node.widgets_values;
  if (!def || values === undefined) return {};
  if (!Array.isArray(values)) return { ...(values as Record<string, unknown>) };
  return Object.fromEntries(orderWidgetValues(def.inputs.filter((i) => i.widget), values).values);
}

class Expander {
  private nextLinkId: number;
  private readonly plans = new Map<string, GroupPlan>();

  constructor(
    private readonly workflow: EditorWorkflow,
    private readonly groups: Record<string, GroupData>,
    private readonly registry: NodeRegistry,
    private readonly warnings: string[],
  ) {
    this.nextLinkId = Math.max(workflow.last_link_id, ...workflow.links.map((l) => l[0])) + 1;
  }

  private plan(name: string): GroupPlan {
    let plan = this.plans.get(name);
    if (!plan) this.plans.set(name, (plan = planGroup(name, this.groups[name]!, this.registry, this.warnings)));
    return plan;
  }

  expand(instance: EditorNode, name: string): { nodes: EditorNode[]; links: EditorLink[] } {
    const data = this.groups[name]!;
    const plan = this.plan(name);
    const innerId = (index: number) => `${instance.id}:${index}`;
    const nodes = data.nodes.map((raw, index) => {
      const widgets = raw.type === 'PrimitiveNode' ? raw.widgets_values : namedWidgets(raw, this.registry);
      return editorNodeSchema.parse({
        ...raw,
        id: innerId(index),
        pos: instance.pos,
        size: [1, 1],
        order: instance.order,
        mode: instance.mode !== NODE_MODE.ALWAYS ? instance.mode : (raw.mode ?? NODE_MODE.ALWAYS),
        inputs: innerInputs(raw).map((i) => ({ ...i, link: null })),
        outputs: (Array.isArray(raw.outputs) ? raw.outputs : []).map((o: object) => ({ ...o, links: [] })),
        widgets_values: widgets,
      });
    });

    if (Array.isArray(instance.widgets_values)) {
      const values = orderWidgetValues(plan.widgets, instance.widgets_values).values;
      for (const widget of plan.widgets) {
        if (!values.has(widget.name)) continue;
        const inner = nodes[widget.node]!;
        const value = values.get(widget.name);
        if (widget.input === null) inner.widgets_values = [value];
        else inner.widgets_values = { ...(inner.widgets_values as Record<string, unknown>), [widget.input]: value };
      }
    }

    const links: EditorLink[] = [];
    const connect = (linkId: number, to: SlotRef) => {
      const slot = nodes[to.node]?.inputs[to.slot];
      if (slot) slot.link = linkId;
    };
    for (const link of plan.internal) {
      if (!nodes[link.from.node] || !nodes[link.to.node]) continue;
      const id = this.nextLinkId++;
      links.push([id, innerId(link.from.node), link.from.slot, innerId(link.to.node), link.to.slot, (link.type ?? '*') as EditorLink[5]]);
      connect(id, link.to);
    }
    // Outer links into the instance now end at the inner node behind each socket, and those out of it start there.
    for (const outer of this.workflow.links) {
      if (String(outer[3]) === String(instance.id)) {
        const target = plan.inputs[outer[4]];
        if (!target) continue;
        outer[3] = innerId(target.node);
        outer[4] = target.slot;
        connect(outer[0], target);
      }
      if (String(outer[1]) === String(instance.id)) {
        const source = plan.outputs[outer[2]];
        if (!source) continue;
        outer[1] = innerId(source.node);
        outer[2] = source.slot;
      }
    }
    return { nodes, links };
  }
}

/** Replaces every group-node instance by its inner nodes; a workflow without group nodes is returned as is. */
export function expandGroupNodes(workflow: EditorWorkflow, registry: NodeRegistry, warnings: string[]): EditorWorkflow {
  const rawGroups = (workflow.extra as { groupNodes?: unknown }).groupNodes;
  if (rawGroups === undefined || !workflow.nodes.some((n) => GROUP_TYPE.test(n.type))) return workflow;
  const parsed = z.record(z.string(), groupDataSchema).safeParse(rawGroups);
  if (!parsed.success) {
    warnings.push(`extra.groupNodes is malformed (${parsed.error.issues[0]?.message}); group nodes stay unexpanded`);
    return workflow;
  }
  let current: EditorWorkflow = structuredClone(workflow);
  // Group definitions may use other group nodes; each round expands one level.
  for (let depth = 0; depth < 8 && current.nodes.some((n) => GROUP_TYPE.exec(n.type)?.[1]! in parsed.data); depth++) {
    const expander = new Expander(current, parsed.data, registry, warnings);
    const nodes: EditorNode[] = [];
    const links: EditorLink[] = [...current.links];
    for (const node of current.nodes) {
      const name = GROUP_TYPE.exec(node.type)?.[1];
      if (name === undefined || !(name in parsed.data)) {
        nodes.push(node);
        continue;
      }
      const expanded = expander.expand(node, name);
      nodes.push(...expanded.nodes);
      links.push(...expanded.links);
    }
    current = { ...current, nodes, links, last_link_id: Math.max(current.last_link_id, ...links.map((l) => l[0])) };
  }
  for (const node of current.nodes) {
    const name = GROUP_TYPE.exec(node.type)?.[1];
    if (name !== undefined && !(name in parsed.data)) warnings.push(`node ${node.id}: group node "${name}" has no definition in extra.groupNodes`);
  }
  return current;
}
