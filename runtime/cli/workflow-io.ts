import { readFileSync } from 'node:fs';
import type { NodeRegistry } from '../../nodes/registry.js';
import type { ApiPrompt } from '../workflow/api-schema.js';
import type { EditorWorkflow } from '../workflow/editor-schema.js';
import { importWorkflow } from '../workflow/import.js';
import { isPng, readWorkflowFromPng } from '../workflow/png.js';
import { didYouMean } from './suggest.js';

export class CliUsageError extends Error {}
/** The workflow itself is unusable (bad JSON, schema errors, validation errors): exit code 2. */
export class InvalidWorkflowError extends Error {
  constructor(
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export interface LoadedWorkflow {
  prompt: ApiPrompt;
  /** The editor graph when there is one (embedded in PNGs as `workflow`). */
  workflow?: EditorWorkflow;
  warnings: string[];
}

/** Reads an editor workflow, an API prompt, or a PNG with either embedded. */
export function loadWorkflowFile(path: string, registry: NodeRegistry): LoadedWorkflow {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new CliUsageError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let source: unknown;
  if (isPng(bytes)) {
    const embedded = readWorkflowFromPng(bytes);
    source = embedded.workflow ?? embedded.prompt;
    if (source === undefined) throw new InvalidWorkflowError(`${path}: PNG has no embedded workflow or prompt (tEXt "workflow"/"prompt")`);
  } else {
    source = bytes.toString('utf8');
  }
  const r = importWorkflow(source, registry);
  if (!r.success) throw new InvalidWorkflowError(`${path}: ${r.error.message}`, r.error);
  const out: LoadedWorkflow = { prompt: r.data.prompt, warnings: r.data.warnings };
  if (r.data.format === 'editor') out.workflow = r.data.workflow;
  return out;
}

function parseValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/**
 * Applies `--set <node>.<input>=<value>` overrides. `<node>` is a node id, a node title, or a class name
 * used by exactly one node; `<value>` is JSON when it parses (numbers, booleans), else a string.
 * With a registry, an input name the node type does not declare is an error (a typo must not be ignored).
 */
export function applyOverrides(prompt: ApiPrompt, sets: string[], registry?: NodeRegistry): ApiPrompt {
  const out: ApiPrompt = structuredClone(prompt);
  for (const s of sets) {
    const m = /^(.+?)\.([A-Za-z0-9_]+)=(.*)$/s.exec(s);
    if (!m) throw new CliUsageError(`--set "${s}": expected <node>.<input>=<value>`);
    const [, nodeRef, input, raw] = m as unknown as [string, string, string, string];
    const ids = Object.keys(out).filter((id) => id === nodeRef || out[id]!._meta?.title === nodeRef || out[id]!.class_type === nodeRef);
    const exact = ids.includes(nodeRef) ? [nodeRef] : ids;
    if (exact.length === 0) throw new CliUsageError(`--set "${s}": no node with id, title or type "${nodeRef}"`);
    if (exact.length > 1) {
      // A class name shared by several nodes applies to all of them (e.g. --set KSampler.steps=4).
      if (!exact.every((id) => out[id]!.class_type === nodeRef)) throw new CliUsageError(`--set "${s}": "${nodeRef}" matches nodes ${exact.join(', ')}; use an id`);
    }
    for (const id of exact) {
      const node = out[id]!;
      const def = registry?.get(node.class_type);
      if (def && !def.inputByName.has(input)) {
        const names = def.inputs.map((i) => i.name);
        throw new CliUsageError(`--set "${s}": ${node.class_type} (node ${id}) has no input "${input}"${didYouMean(input, names)}; its inputs: ${names.join(', ')}`);
      }
      if (Array.isArray(node.inputs[input])) throw new CliUsageError(`--set "${s}": input "${input}" of node ${id} is a link, not a value`);
      node.inputs[input] = parseValue(raw) as never;
    }
  }
  return out;
}
