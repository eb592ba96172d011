import {
  hasWidget,
  nodeSpecSchema,
  type ComboInputSpec,
  type ComboValue,
  type HiddenInputKind,
  type InputSpec,
  type NodeSpec,
} from './spec.js';

export interface ResolvedInput {
  readonly name: string;
  readonly spec: InputSpec;
  readonly required: boolean;
  /** Owns a slot in the editor's `widgets_values`. */
  readonly widget: boolean;
}

export interface ResolvedOutput {
  readonly type: string;
  readonly name: string;
  readonly isList: boolean;
  readonly tooltip?: string;
}

/** A registered spec with the lookups the validator, executor and codecs need precomputed. */
export interface NodeDefinition {
  readonly name: string;
  readonly displayName: string;
  readonly spec: NodeSpec;
  /** Required inputs first, then optional, each in declaration order: the order `widgets_values` follows. */
  readonly inputs: readonly ResolvedInput[];
  readonly inputByName: ReadonlyMap<string, ResolvedInput>;
  readonly hidden: Readonly<Record<string, HiddenInputKind>>;
  readonly outputs: readonly ResolvedOutput[];
  readonly outputNode: boolean;
}

/** One entry of ComfyUI's `/object_info`: `[type, options]`, or `[[choices], options]` for combos. */
export type WireInput = [string | ComboValue[], Record<string, unknown>?];

export interface NodeInfo {
  input: {
    required: Record<string, WireInput>;
    optional?: Record<string, WireInput>;
    hidden?: Record<string, HiddenInputKind>;
  };
  input_order: { required: string[]; optional?: string[]; hidden?: string[] };
  output: string[];
  output_is_list: boolean[];
  output_name: string[];
  output_tooltips?: string[];
  name: string;
  display_name: string;
  description: string;
  python_module: string;
  category: string;
  output_node: boolean;
  deprecated?: boolean;
  experimental?: boolean;
}

export interface SpecIssue {
  path: string;
  message: string;
}

export class NodeSpecError extends Error {
  constructor(
    readonly nodeName: string,
    readonly issues: readonly SpecIssue[],
  ) {
    super(`invalid node spec "${nodeName}": ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`);
    this.name = 'NodeSpecError';
  }
}

export async function resolveComboOptions(spec: ComboInputSpec): Promise<readonly ComboValue[]> {
  const options = typeof spec.options === 'function' ? await spec.options() : spec.options;
  if (!Array.isArray(options)) throw new TypeError('combo provider must return an array');
  return options;
}

function buildDefinition(spec: NodeSpec): NodeDefinition {
  const inputs: ResolvedInput[] = [];
  for (const required of [true, false]) {
    const group = (required ? spec.inputs?.required : spec.inputs?.optional) ?? {};
    for (const [name, input] of Object.entries(group)) inputs.push({ name, spec: input, required, widget: hasWidget(input) });
  }
  return {
    name: spec.name,
    displayName: spec.displayName ?? spec.name,
    spec,
    inputs,
    inputByName: new Map(inputs.map((i) => [i.name, i])),
    hidden: { ...(spec.inputs?.hidden ?? {}) },
    outputs: (spec.outputs ?? []).map((o) => ({ type: o.type, name: o.name ?? o.type, isList: o.isList ?? false, tooltip: o.tooltip })),
    outputNode: spec.outputNode ?? false,
  };
}

function stripUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

/** The `/object_info` form of one input; combos need their choices already resolved. */
export function wireInput(spec: InputSpec, comboValues?: readonly ComboValue[]): WireInput {
  if (spec.type === 'COMBO') {
    const { type: _type, options, ...rest } = spec as ComboInputSpec;
    const values = comboValues ?? (Array.isArray(options) ? options : []);
    return [[...values], stripUndefined(rest)];
  }
  const { type, ...rest } = spec;
  const options = stripUndefined(rest);
  return Object.keys(options).length > 0 ? [type, options] : [type];
}

/**
 * Node types by class name. Specs are validated on the way in so a malformed node pack fails at
 * startup with a path to the bad field, not halfway through someone's render.
 */
export class NodeRegistry {
  private readonly definitions = new Map<string, NodeDefinition>();
  private readonly aliasTable = new Map<string, string>();

  register(spec: NodeSpec): NodeDefinition {
    const name = typeof spec?.name === 'string' ? spec.name : '(unnamed)';
    const parsed = nodeSpecSchema.safeParse(spec);
    if (!parsed.success) {
      throw new NodeSpecError(
        name,
        parsed.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
      );
    }
    if (this.definitions.has(spec.name)) throw new NodeSpecError(name, [{ path: 'name', message: 'a node with this name is already registered' }]);
    if (this.aliasTable.has(spec.name)) throw new NodeSpecError(name, [{ path: 'name', message: 'this name is already an alias' }]);
    const definition = buildDefinition(spec);
    this.definitions.set(spec.name, definition);
    return definition;
  }

  registerAll(specs: Iterable<NodeSpec>): void {
    for (const spec of specs) this.register(spec);
  }

  /** Maps a ComfyUI class name to one of ours, for nodes we renamed; the target may be registered later. */
  alias(comfyName: string, target: string): void {
    if (this.definitions.has(comfyName)) throw new Error(`cannot alias "${comfyName}": a node with that name is registered`);
    if (comfyName === target) throw new Error(`alias "${comfyName}" points at itself`);
    this.aliasTable.set(comfyName, target);
  }

  get(name: string): NodeDefinition | undefined {
    return this.definitions.get(name) ?? this.definitions.get(this.aliasTable.get(name) ?? '');
  }

  require(name: string): NodeDefinition {
    const definition = this.get(name);
    if (!definition) throw new Error(`unknown node type "${name}"`);
    return definition;
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** Registered class names (aliases excluded), sorted. */
  names(): string[] {
    return [...this.definitions.keys()].sort();
  }

  aliases(): Record<string, string> {
    return Object.fromEntries(this.aliasTable);
  }

  async nodeInfo(name: string): Promise<NodeInfo> {
    const def = this.require(name);
    const { spec } = def;
    const group = async (required: boolean) => {
      const entries = def.inputs.filter((i) => i.required === required);
      const wire: Record<string, WireInput> = {};
      for (const input of entries) {
        const choices = input.spec.type === 'COMBO' ? await resolveComboOptions(input.spec as ComboInputSpec) : undefined;
        wire[input.name] = wireInput(input.spec, choices);
      }
      return { wire, order: entries.map((i) => i.name) };
    };
    const required = await group(true);
    const optional = await group(false);
    const hiddenNames = Object.keys(def.hidden);
    const info: NodeInfo = {
      input: { required: required.wire },
      input_order: { required: required.order },
      output: def.outputs.map((o) => o.type),
      output_is_list: def.outputs.map((o) => o.isList),
      output_name: def.outputs.map((o) => o.name),
      name: def.name,
      display_name: def.displayName,
      description: spec.description ?? '',
      python_module: 'resflow',
      category: spec.category,
      output_node: def.outputNode,
    };
    if (optional.order.length > 0) {
      info.input.optional = optional.wire;
      info.input_order.optional = optional.order;
    }
    if (hiddenNames.length > 0) {
      info.input.hidden = { ...def.hidden };
      info.input_order.hidden = hiddenNames;
    }
    if (def.outputs.some((o) => o.tooltip)) info.output_tooltips = def.outputs.map((o) => o.tooltip ?? '');
    if (spec.deprecated) info.deprecated = true;
    if (spec.experimental) info.experimental = true;
    return info;
  }

  /** The body of ComfyUI's `GET /object_info`; combo providers are evaluated now, so listings are fresh. */
  async objectInfo(): Promise<Record<string, NodeInfo>> {
    const out: Record<string, NodeInfo> = {};
    for (const name of this.names()) out[name] = await this.nodeInfo(name);
    return out;
  }
}
