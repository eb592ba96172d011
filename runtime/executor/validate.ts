import { resolveComboOptions, type NodeDefinition, type NodeRegistry } from '../nodes-api/registry.js';
import { isWidgetSpec, type ComboInputSpec, type ComboValue } from '../nodes-api/spec.js';
import { isLinkValue, parseApiPrompt, type ApiPrompt } from '../workflow/api-schema.js';
import type { NodeErrors, PromptError } from './errors.js';
import { checkWidgetValue } from './widget-values.js';
import { compareIds, findCycles, reachable, type GraphNode, type LinkRef, type ValidatedGraph, type WidgetValue } from './graph.js';

export interface ValidateOptions {
  /** Only these output nodes are candidates (ComfyUI's partial_execution_targets). */
  outputs?: readonly string[];
}

export type ValidationResult =
  | { ok: true; graph: ValidatedGraph; outputs: string[]; node_errors: NodeErrors }
  | { ok: false; error: PromptError; node_errors: NodeErrors };

/** ComfyUI's validate_node_input, non-strict: `*` matches anything, comma lists match on any overlap. */
export function typesCompatible(received: string, expected: string): boolean {
  if (received === expected || received === '*' || expected === '*') return true;
  const want = new Set(expected.split(',').map((t) => t.trim()));
  return received.split(',').some((t) => want.has(t.trim()));
}

function fail(error: PromptError, node_errors: NodeErrors = {}): ValidationResult {
  return { ok: false, error, node_errors };
}

function missingTypes(prompt: ApiPrompt, missing: string[]): ValidationResult {
  const describe = (id: string) => ({ node_id: id, class_type: prompt[id].class_type, node_title: prompt[id]._meta?.title ?? null });
  const nodeErrors: NodeErrors = {};
  for (const id of missing) {
    const { class_type } = prompt[id];
    nodeErrors[id] = {
      errors: [
        {
          type: 'missing_node_type',
          message: `Node '${class_type}' not found. The custom node may not be installed.`,
          details: `Node ID '#${id}'`,
          extra_info: describe(id),
        },
      ],
      dependent_outputs: [],
      class_type,
    };
  }
  const names = [...new Set(missing.map((id) => prompt[id].class_type))];
  const first = prompt[missing[0]];
  const message =
    missing.length === 1
      ? `Node '${first._meta?.title ?? first.class_type}' not found. The custom node may not be installed.`
      : `Node types not found: ${names.map((n) => `'${n}'`).join(', ')}. The custom nodes may not be installed.`;
  return fail(
    {
      type: 'missing_node_type',
      message,
      details: missing.map((id) => `Node ID '#${id}'`).join(', '),
      extra_info: { ...describe(missing[0]), missing_nodes: missing.map(describe) },
    },
    nodeErrors,
  );
}

interface CheckedNode {
  errors: PromptError[];
  widgets: Record<string, WidgetValue>;
  links: Record<string, LinkRef>;
}

class NodeChecker {
  // Providers can list folders: evaluate each once per validation, not once per node using it.
  private readonly choices = new Map<string, Promise<readonly ComboValue[]>>();

  constructor(
    private readonly prompt: ApiPrompt,
    private readonly defs: ReadonlyMap<string, NodeDefinition>,
  ) {}

  /** Upstream ids through declared inputs whose link is well-formed and points at an existing node. */
  upstream(id: string): string[] {
    const def = this.defs.get(id)!;
    const out: string[] = [];
    for (const input of def.inputs) {
      const value = this.prompt[id].inputs[input.name];
      if (isLinkValue(value) && this.prompt[String(value[0])]) out.push(String(value[0]));
    }
    return out;
  }

  private comboChoices(def: NodeDefinition, name: string, spec: ComboInputSpec): Promise<readonly ComboValue[]> {
    const key = `${def.name}\u0000${name}`;
    let pending = this.choices.get(key);
    if (!pending) {
      pending = resolveComboOptions(spec);
      this.choices.set(key, pending);
    }
    return pending;
  }

  async check(id: string): Promise<CheckedNode> {
    const def = this.defs.get(id)!;
    const values = this.prompt[id].inputs;
    const result: CheckedNode = { errors: [], widgets: {}, links: {} };
    for (const input of def.inputs) {
      const { name, spec } = input;
      const raw = values[name];
      const extra = { input_name: name };
      if (raw === undefined || raw === null) {
        if (input.required) result.errors.push({ type: 'required_input_missing', message: 'Required input is missing', details: name, extra_info: extra });
        continue;
      }
      if (Array.isArray(raw)) {
        const link = this.checkLink(name, spec.type, raw, result.errors);
        if (link) result.links[name] = link;
        continue;
      }
      if (!isWidgetSpec(spec)) {
        result.errors.push({
          type: 'invalid_input_type',
          message: `Input of type ${spec.type} must be linked to another node's output`,
          details: `${name}, ${JSON.stringify(raw)}`,
          extra_info: { ...extra, received_value: raw },
        });
        continue;
      }
      let choices: readonly ComboValue[] | undefined;
      if (spec.type === 'COMBO') {
        try {
          choices = await this.comboChoices(def, name, spec);
        } catch (e) {
          result.errors.push({
            type: 'exception_during_validation',
            message: 'Exception when listing the choices of an input',
            details: `${name}: ${(e as Error)?.message ?? String(e)}`,
            extra_info: { ...extra, exception_message: String((e as Error)?.message ?? e) },
          });
          continue;
        }
      }
      const checked = checkWidgetValue(name, spec, raw, choices);
      if (checked.ok) result.widgets[name] = checked.value;
      else result.errors.push(checked.error);
    }
    return result;
  }

  private checkLink(name: string, expected: string, raw: unknown[], errors: PromptError[]): LinkRef | undefined {
    const bad = (message: string, details: string) =>
      errors.push({ type: 'bad_linked_input', message, details, extra_info: { input_name: name, received_value: raw } });
    if (!isLinkValue(raw)) {
      bad('Bad linked input, must be a length-2 list of [node_id, slot_index]', name);
      return undefined;
    }
    const from = String(raw[0]);
    const slot = raw[1];
    const source = this.defs.get(from);
    if (!this.prompt[from] || !source) {
      bad('Bad linked input, the linked node does not exist', `${name}, node ${from} is not in the prompt`);
      return undefined;
    }
    if (slot < 0 || slot >= source.outputs.length) {
      bad('Bad linked input, the linked output slot does not exist', `${name}, ${from}:${slot} but ${this.prompt[from].class_type} has ${source.outputs.length} output(s)`);
      return undefined;
    }
    const received = source.outputs[slot].type;
    if (!typesCompatible(received, expected)) {
      errors.push({
        type: 'return_type_mismatch',
        message: 'Return type mismatch between linked nodes',
        details: `${name}, ${received} != ${expected}`,
        extra_info: { input_name: name, received_type: received, linked_node: [from, slot] },
      });
      return undefined;
    }
    return { node: from, slot };
  }
}

/**
 * Checks a prompt before anything runs. Like ComfyUI, only what some output node needs is checked,
 * and the prompt is accepted when at least one output's whole upstream is valid; the failing outputs
 * are reported in `node_errors` and simply not run.
 */
export async function validatePrompt(input: unknown, registry: NodeRegistry, options: ValidateOptions = {}): Promise<ValidationResult> {
  const parsed = parseApiPrompt(input);
  if (!parsed.success) {
    return fail({
      type: 'invalid_prompt',
      message: 'Cannot execute because the prompt is malformed',
      details: parsed.error.issues.map((i) => `${i.path}: ${i.message}`).join('\n'),
      extra_info: { issues: parsed.error.issues },
    });
  }
  const prompt = parsed.data;
  const ids = Object.keys(prompt).sort(compareIds);

  const defs = new Map<string, NodeDefinition>();
  const missing: string[] = [];
  for (const id of ids) {
    const def = registry.get(prompt[id].class_type);
    if (def) defs.set(id, def);
    else missing.push(id);
  }
  if (missing.length > 0) return missingTypes(prompt, missing);

  const targets = options.outputs ? new Set(options.outputs) : undefined;
  const outputs = ids.filter((id) => defs.get(id)!.outputNode && (!targets || targets.has(id)));
  if (outputs.length === 0) return fail({ type: 'prompt_no_outputs', message: 'Prompt has no outputs', details: '', extra_info: {} });

  const checker = new NodeChecker(prompt, defs);
  const upstream = (id: string) => checker.upstream(id);
  const needed = [...reachable(outputs, upstream)].sort(compareIds);
  const checked = new Map<string, CheckedNode>();
  for (const id of needed) checked.set(id, await checker.check(id));

  for (const cycle of findCycles(needed, upstream)) {
    for (const id of cycle) {
      checked.get(id)!.errors.push({
        type: 'dependency_cycle',
        message: 'Dependency cycle detected',
        details: `node ${id} is part of the cycle ${cycle.join(' -> ')}`,
        extra_info: { cycle },
      });
    }
  }

  // A node is runnable when it and everything upstream is clean. Cycle members carry errors, so the walk stops there.
  const valid = new Map<string, boolean>();
  const isValid = (id: string): boolean => {
    const known = valid.get(id);
    if (known !== undefined) return known;
    valid.set(id, false);
    const ok = checked.get(id)!.errors.length === 0 && upstream(id).every(isValid);
    valid.set(id, ok);
    return ok;
  };

  const nodeErrors: NodeErrors = {};
  const good: string[] = [];
  for (const output of outputs) {
    if (isValid(output)) {
      good.push(output);
      continue;
    }
    for (const id of [...reachable([output], upstream)].sort(compareIds)) {
      const { errors } = checked.get(id)!;
      if (errors.length === 0) continue; // downstream of a bad node, but not itself at fault
      nodeErrors[id] ??= { errors, dependent_outputs: [], class_type: prompt[id].class_type };
      nodeErrors[id].dependent_outputs.push(output);
    }
  }

  if (good.length === 0) {
    const lines = Object.values(nodeErrors).flatMap((n) => n.errors.map((e) => `${e.message}: ${e.details}`));
    return fail(
      { type: 'prompt_outputs_failed_validation', message: 'Prompt outputs failed validation', details: lines.join('\n'), extra_info: {} },
      nodeErrors,
    );
  }

  const nodes = new Map<string, GraphNode>();
  for (const id of [...reachable(good, upstream)].sort(compareIds)) {
    const { widgets, links } = checked.get(id)!;
    nodes.set(id, { id, classType: prompt[id].class_type, def: defs.get(id)!, title: prompt[id]._meta?.title, widgets, links });
  }
  return { ok: true, graph: { nodes, outputs: good, prompt }, outputs: good, node_errors: nodeErrors };
}
