import { describe, expect, it } from 'vitest';
import { isLinkValue, parseApiPrompt, parsePromptRequest } from '../../runtime/workflow/api-schema.js';
import { parseEditorWorkflow } from '../../runtime/workflow/editor-schema.js';
import { detectWorkflowFormat, importWorkflow } from '../../runtime/workflow/import.js';
import { jsonPath, WorkflowParseError } from '../../runtime/workflow/issues.js';
import { makeTestNodes } from '../executor/fixtures.js';
import { sampleEditorWorkflow } from './fixtures.js';

function paths(result: { success: boolean; error?: WorkflowParseError }): string[] {
  return result.success ? [] : result.error!.issues.map((i) => i.path);
}

describe('workflow schemas', () => {
  it('formats JSON paths', () => {
    expect(jsonPath([])).toBe('$');
    expect(jsonPath(['nodes', 2, 'pos', 0])).toBe('$.nodes[2].pos[0]');
    expect(jsonPath(['7', 'inputs', 'seed'])).toBe('$["7"].inputs.seed');
    expect(jsonPath(['extra', 'my key'])).toBe('$.extra["my key"]');
  });

  it('parses a valid editor workflow, keeping unknown fields and applying defaults', () => {
    const raw = { ...sampleEditorWorkflow(), extension_data: { x: 1 } } as Record<string, unknown>;
    (raw.nodes as Record<string, unknown>[])[0].size = { 0: 315, 1: 58 };
    (raw.nodes as Record<string, unknown>[])[0].custom_field = 'kept';
    const parsed = parseEditorWorkflow(JSON.stringify(raw));
    expect(parsed.success).toBe(true);
    if (!parsed.success) return;
    expect(parsed.data.nodes[0].size).toEqual([315, 58]);
    expect((parsed.data.nodes[0] as Record<string, unknown>).custom_field).toBe('kept');
    expect((parsed.data as Record<string, unknown>).extension_data).toEqual({ x: 1 });
  });

  it('reports malformed editor workflows with paths', () => {
    const wf = sampleEditorWorkflow() as unknown as Record<string, unknown>;
    const nodes = wf.nodes as Record<string, unknown>[];
    delete nodes[2].pos;
    nodes[4].inputs = [{ name: 'value', type: '*', link: 'two' }];
    (wf.links as unknown[])[1] = [2, 2, 0, 4];
    nodes[6].id = 1;
    const result = parseEditorWorkflow(wf);
    expect(result.success).toBe(false);
    expect(paths(result)).toEqual(expect.arrayContaining(['$.nodes[2].pos', '$.nodes[4].inputs[0].link', '$.links[1]']));
    expect(parseEditorWorkflow({ ...sampleEditorWorkflow(), version: 0.3 }).error?.issues).toEqual([
      { path: '$.version', message: 'only workflow version 0.4 is supported' },
    ]);
    const dupe = sampleEditorWorkflow();
    dupe.nodes[6].id = 1;
    expect(paths(parseEditorWorkflow(dupe))).toEqual(['$.nodes[6].id']);
    expect(paths(parseEditorWorkflow('{"nodes": ['))).toEqual(['$']);
    expect(parseEditorWorkflow([]).error).toBeInstanceOf(WorkflowParseError);
  });

  it('parses API prompts and prompt requests, with paths on errors', () => {
    const ok = parseApiPrompt({ '1': { class_type: 'Int', inputs: { value: 1 }, _meta: { title: 'x' }, is_changed: ['a'] } });
    expect(ok.success).toBe(true);
    const bad = parseApiPrompt({ '1': { class_type: '', inputs: {} }, '2': { inputs: [] }, '3': 'node' });
    expect(paths(bad)).toEqual(['$["1"].class_type', '$["2"].class_type', '$["2"].inputs', '$["3"]']);
    expect(bad.error?.message).toMatch(/^invalid API prompt:/);

    const request = parsePromptRequest({ prompt: { '1': { class_type: 'Int', inputs: {} } }, client_id: 'c', extra_data: { extra_pnginfo: { workflow: {} } } });
    expect(request.success).toBe(true);
    expect(paths(parsePromptRequest({ prompt: { '1': { class_type: 3 } } }))).toEqual(['$.prompt["1"].class_type']);
  });

  it('recognizes links the way ComfyUI does', () => {
    expect(isLinkValue(['4', 0])).toBe(true);
    expect(isLinkValue([4, 1])).toBe(true);
    expect(isLinkValue(['4', 0.5])).toBe(false);
    expect(isLinkValue(['4'])).toBe(false);
    expect(isLinkValue('4')).toBe(false);
  });
});

describe('importWorkflow', () => {
  it('accepts either format', () => {
    const { registry } = makeTestNodes();
    const api = { '1': { class_type: 'Int', inputs: { value: 2 } }, '2': { class_type: 'Show', inputs: { value: ['1', 0] } } };
    const fromApi = importWorkflow(JSON.stringify(api), registry);
    expect(fromApi.success && fromApi.data.format).toBe('api');
    expect(fromApi.data?.workflow.nodes).toHaveLength(2);

    const fromEditor = importWorkflow(fromApi.data!.workflow, registry);
    expect(fromEditor.data?.format).toBe('editor');
    expect(fromEditor.data?.prompt['2'].inputs).toEqual({ value: ['1', 0] });

    expect(detectWorkflowFormat([])).toBeUndefined();
    expect(importWorkflow({ hello: 1 }, registry).error?.issues[0].path).toBe('$');
    expect(importWorkflow({ nodes: [{}] }, registry).error?.issues.map((i) => i.path)).toContain('$.nodes[0].id');
  });
});
