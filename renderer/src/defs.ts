import { NodeRegistry, type NodeDefinition, type NodeInfo, type WireInput } from '../../nodes/registry.js';
import { hasControlWidget, type InputSpec, type NodeSpec, type OutputSpec } from '../../nodes/spec.js';

/** One slot of a node's `widgets_values`: a widget input, or the seed-style control right after it. */
export interface WidgetSlot {
  name: string;
  /** The input this slot belongs to; for a control slot, the input it controls. */
  input: string;
  control: boolean;
}

export const CONTROL_WIDGET_NAME = 'control_after_generate';
export const CONTROL_VALUES = ['fixed', 'increment', 'decrement', 'randomize'] as const;
export type ControlValue = (typeof CONTROL_VALUES)[number];

/**
 * The node library as the editor sees it. `/object_info` is turned back into node specs and registered in
 * a real NodeRegistry, so the editor converts workflows (editorToApi, importWorkflow) with exactly the
 * code the server validates with.
 */
export class NodeLibrary {
  readonly registry = new NodeRegistry();
  readonly info = new Map<string, NodeInfo>();
  /** Types the server offered that could not be read (listed in the console, shown as missing). */
  readonly rejected: string[] = [];

  constructor(objectInfo: Record<string, NodeInfo>) {
    for (const [name, info] of Object.entries(objectInfo)) {
      try {
        this.registry.register(specFromInfo(name, info));
        this.info.set(name, info);
      } catch (e) {
        this.rejected.push(name);
        console.warn(`node type ${name} skipped:`, e);
      }
    }
  }

  get(type: string): NodeDefinition | undefined {
    return this.registry.get(type);
  }

  names(): string[] {
    return this.registry.names();
  }

  /** The order of `widgets_values` for a node type: ComfyUI's, with a control slot after seed-like inputs. */
  widgetLayout(type: string): WidgetSlot[] {
    const def = this.get(type);
    if (!def) return [];
    const out: WidgetSlot[] = [];
    for (const input of def.inputs) {
      if (!input.widget) continue;
      out.push({ name: input.name, input: input.name, control: false });
      if (hasControlWidget(input.spec)) out.push({ name: CONTROL_WIDGET_NAME, input: input.name, control: true });
    }
    return out;
  }
}

function specFromWire(wire: WireInput): InputSpec {
  const [typeOrChoices, options = {}] = wire;
  if (Array.isArray(typeOrChoices)) {
    const spec = { ...options, type: 'COMBO', options: typeOrChoices } as Record<string, unknown>;
    // A stale default (a model file that is gone) must not make the whole node unusable.
    if (spec.default !== undefined && !typeOrChoices.includes(spec.default as string)) delete spec.default;
    return spec as unknown as InputSpec;
  }
  if (typeOrChoices === 'COMBO' && Array.isArray((options as { options?: unknown }).options)) {
    return { ...options, type: 'COMBO' } as unknown as InputSpec;
  }
  return { ...options, type: typeOrChoices } as InputSpec;
}

export function specFromInfo(name: string, info: NodeInfo): NodeSpec {
  const group = (which: 'required' | 'optional') => {
    const wires = info.input?.[which];
    if (!wires) return undefined;
    const order = info.input_order?.[which] ?? Object.keys(wires);
    return Object.fromEntries(order.filter((n) => n in wires).map((n) => [n, specFromWire(wires[n])]));
  };
  const outputs: OutputSpec[] = (info.output ?? []).map((type, i) => ({
    type,
    name: info.output_name?.[i] ?? type,
    isList: info.output_is_list?.[i] ?? false,
    ...(info.output_tooltips?.[i] ? { tooltip: info.output_tooltips[i] } : {}),
  }));
  return {
    name,
    displayName: info.display_name || name,
    category: info.category || 'other',
    description: info.description ?? '',
    inputs: { required: group('required'), optional: group('optional'), hidden: info.input?.hidden },
    outputs,
    outputNode: info.output_node,
    deprecated: info.deprecated,
    experimental: info.experimental,
    // The editor never runs nodes; the server does.
    execute: () => [],
  };
}
