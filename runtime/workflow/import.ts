import type { NodeRegistry } from '../../nodes/registry.js';
import { parseApiPrompt, type ApiPrompt } from './api-schema.js';
import { apiToEditor } from './api-to-editor.js';
import { parseEditorWorkflow, type EditorWorkflow } from './editor-schema.js';
import { editorToApi } from './editor-to-api.js';
import { WorkflowParseError, type ParseResult } from './issues.js';

export type WorkflowFormat = 'api' | 'editor';

/** Editor workflows have a `nodes` array; API prompts are objects of `{ class_type }` keyed by id. */
export function detectWorkflowFormat(value: unknown): WorkflowFormat | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  if (Array.isArray((value as { nodes?: unknown }).nodes)) return 'editor';
  const entries = Object.values(value);
  if (entries.length > 0 && entries.every((n) => typeof n === 'object' && n !== null && 'class_type' in n)) return 'api';
  return undefined;
}

export interface ImportedWorkflow {
  format: WorkflowFormat;
  /** Ready for validation. */
  prompt: ApiPrompt;
  /** What the editor opens: the original for editor files, a laid-out conversion for API prompts. */
  workflow: EditorWorkflow;
  warnings: string[];
}

/** One entry point for a dropped or opened JSON file, whichever of the two formats it is in. */
export function importWorkflow(input: unknown, registry: NodeRegistry): ParseResult<ImportedWorkflow> {
  let value = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (e) {
      return { success: false, error: new WorkflowParseError('workflow', [{ path: '$', message: `not valid JSON: ${(e as Error).message}` }]) };
    }
  }
  const format = detectWorkflowFormat(value);
  if (format === 'editor') {
    const parsed = parseEditorWorkflow(value);
    if (!parsed.success) return parsed;
    const { prompt, warnings } = editorToApi(parsed.data, registry);
    return { success: true, data: { format, prompt, workflow: parsed.data, warnings } };
  }
  if (format === 'api') {
    const parsed = parseApiPrompt(value);
    if (!parsed.success) return parsed;
    const warnings: string[] = [];
    const prompt = fillMissingWidgets(parsed.data, registry, warnings);
    return { success: true, data: { format, prompt, workflow: apiToEditor(prompt, registry), warnings } };
  }
  return {
    success: false,
    error: new WorkflowParseError('workflow', [{ path: '$', message: 'neither an editor workflow (nodes array) nor an API prompt (nodes with class_type)' }]),
  };
}

/**
 * API prompts saved by older ComfyUI versions lack widget inputs added since (VAEEncodeForInpaint's
 * grow_mask_by, a scheduler's denoise). Opening such a file fills them with the node's default and says so;
 * the server's /prompt route stays as strict as ComfyUI's.
 */
function fillMissingWidgets(prompt: ApiPrompt, registry: NodeRegistry, warnings: string[]): ApiPrompt {
  let out: ApiPrompt | undefined;
  for (const [id, node] of Object.entries(prompt)) {
    const def = registry.get(node.class_type);
    if (!def) continue;
    for (const input of def.inputs) {
      if (!input.widget || !input.required || input.name in node.inputs) continue;
      if (!('default' in input.spec) || input.spec.default === undefined) continue;
      out ??= structuredClone(prompt);
      out[id]!.inputs[input.name] = input.spec.default;
      warnings.push(`node ${id} (${node.class_type}): no value for "${input.name}", using its default ${JSON.stringify(input.spec.default)}`);
    }
  }
  return out ?? prompt;
}
