import { describe, expect, it } from 'vitest';
import { validatePrompt } from '../../runtime/executor/validate.js';
import { apiToEditor } from '../../runtime/workflow/api-to-editor.js';
import { editorWorkflowSchema, parseEditorWorkflow } from '../../runtime/workflow/editor-schema.js';
import { assignWidgetValues, editorToApi } from '../../runtime/workflow/editor-to-api.js';
import { makeTestNodes } from '../executor/fixtures.js';
import { sampleEditorWorkflow } from './fixtures.js';

function stripMeta(prompt: Record<string, { class_type: string; inputs: Record<string, unknown> }>) {
  return Object.fromEntries(Object.entries(prompt).map(([id, n]) => [id, { class_type: n.class_type, inputs: n.inputs }]));
}

describe('editor -> API', () => {
  it('maps widgets_values by input name, skips the seed control value, follows links, drops muted/bypassed/virtual nodes', () => {
    const { registry } = makeTestNodes();
    const parsed = parseEditorWorkflow(sampleEditorWorkflow());
    expect(parsed.success).toBe(true);
    if (!parsed.success) return;
    const { prompt, warnings } = editorToApi(parsed.data, registry);
    expect(stripMeta(prompt)).toEqual({
      '1': { class_type: 'Int', inputs: { value: 3 } },
      '2': { class_type: 'Noise', inputs: { seed: ['1', 0], steps: 20, denoise: 0.5, sampler: 'euler', enabled: true } },
      '3': { class_type: 'Noise', inputs: { seed: 777, steps: 10, denoise: 1, sampler: 'dpmpp_2m', enabled: false } },
      '4': { class_type: 'Sink', inputs: { value: ['2', 0] } },
      '5': { class_type: 'Sink', inputs: { value: ['3', 0] } }, // through the reroute
      '8': { class_type: 'Show', inputs: {} }, // its source is muted
      '10': { class_type: 'ToString', inputs: { value: ['1', 0] } },
      '11': { class_type: 'Show', inputs: { value: ['10', 0] } }, // around the bypassed Concat
      '13': { class_type: 'Add', inputs: { a: 42, b: 5 } }, // primitive node value
      '14': { class_type: 'Sink', inputs: { value: ['13', 0] } },
      '16': { class_type: 'FancyUpscale', inputs: { image: ['1', 0] } },
    });
    expect(prompt['3']._meta).toEqual({ title: 'Second noise' });
    expect(prompt['13']._meta).toEqual({ title: 'Add Integers' });
    expect(warnings).toEqual(['node 16: unknown type "FancyUpscale", its widget values cannot be mapped']);
  });

  it('produces a prompt the validator understands', async () => {
    const { registry } = makeTestNodes();
    const workflow = sampleEditorWorkflow();
    workflow.nodes = workflow.nodes.filter((n) => n.id !== 16);
    const { prompt } = editorToApi(editorWorkflowSchema.parse(workflow), registry);
    const result = await validatePrompt(prompt, registry);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(Object.keys(result.node_errors)).toEqual(['8']);
    expect(result.node_errors['8'].errors[0]).toMatchObject({ type: 'required_input_missing', extra_info: { input_name: 'value' } });
    expect(result.outputs).toEqual(['4', '5', '11', '14']);
  });

  it('lines up workflows saved without the control value, and object-shaped widgets_values', () => {
    const { registry } = makeTestNodes();
    const noise = registry.require('Noise');
    const expected = new Map<string, unknown>([
      ['seed', 777],
      ['steps', 10],
      ['denoise', 1],
      ['sampler', 'dpmpp_2m'],
      ['enabled', false],
    ]);
    expect(assignWidgetValues(noise, [777, 'fixed', 10, 1, 'dpmpp_2m', false])).toEqual(expected);
    expect(assignWidgetValues(noise, [777, 10, 1, 'dpmpp_2m', false])).toEqual(expected);
    expect(assignWidgetValues(noise, { steps: 10, seed: 777, denoise: 1, sampler: 'dpmpp_2m', enabled: false, junk: 1 })).toEqual(
      new Map([...expected].sort(([a], [b]) => noise.inputs.findIndex((i) => i.name === a) - noise.inputs.findIndex((i) => i.name === b))),
    );
  });

  it('skips a control value after an INT that lacks the flag only when the next widget cannot hold it', () => {
    const { registry } = makeTestNodes();
    registry.register({
      name: 'OldSampler',
      category: 't',
      inputs: { required: { noise_seed: { type: 'INT' }, cfg: { type: 'FLOAT' }, mode: { type: 'COMBO', options: ['fixed', 'other'] } } },
      execute: () => [],
    });
    const def = registry.require('OldSampler');
    expect([...assignWidgetValues(def, [5, 'randomize', 7.5, 'other'])]).toEqual([['noise_seed', 5], ['cfg', 7.5], ['mode', 'other']]);
    registry.register({
      name: 'IntThenCombo',
      category: 't',
      inputs: { required: { n: { type: 'INT' }, mode: { type: 'COMBO', options: ['fixed', 'other'] } } },
      execute: () => [],
    });
    expect([...assignWidgetValues(registry.require('IntThenCombo'), [5, 'fixed'])]).toEqual([['n', 5], ['mode', 'fixed']]);
  });

  it('fills a missing widget value from the default, with a warning for required inputs only', () => {
    const { registry } = makeTestNodes();
    const workflow = editorWorkflowSchema.parse({
      last_node_id: 2,
      last_link_id: 0,
      nodes: [
        { id: 1, type: 'Concat', pos: [0, 0], size: [1, 1], widgets_values: ['x'] },
        { id: 2, type: 'Sink', pos: [0, 0], size: [1, 1] },
      ],
      links: [],
      version: 0.4,
    });
    const { prompt, warnings } = editorToApi(workflow, registry);
    expect(prompt['1'].inputs).toEqual({ a: 'x', b: '', separator: ' ' });
    // b is required; separator is optional (optional widgets are often newer than the file).
    expect(warnings).toEqual(['node 1 (Concat): no saved value for "b", using default']);
  });
});

describe('API -> editor', () => {
  const apiPrompt = {
    '4': { class_type: 'Int', inputs: { value: 3 } },
    '5': { class_type: 'Noise', inputs: { seed: 99, steps: 12, denoise: 0.7, sampler: 'euler', enabled: true }, _meta: { title: 'My noise' } },
    '6': { class_type: 'Add', inputs: { a: ['4', 0], b: 2 } },
    '7': { class_type: 'Show', inputs: { value: ['6', 0] } },
    '8': { class_type: 'Sink', inputs: { value: ['5', 0] } },
    '9': { class_type: 'Apply', inputs: { model: ['10', 0], strength: 0.5 } },
    '10': { class_type: 'PickModel', inputs: { ckpt_name: 'base.safetensors' } },
  };

  it('lays nodes out left to right by depth and writes a valid editor workflow', () => {
    const { registry } = makeTestNodes();
    const workflow = apiToEditor(apiPrompt, registry);
    expect(editorWorkflowSchema.safeParse(workflow).success).toBe(true);
    const byId = new Map(workflow.nodes.map((n) => [n.id, n]));
    const x = (id: number) => byId.get(id)!.pos[0];
    expect(x(4)).toBe(x(5));
    expect(x(4)).toBe(x(10));
    expect(x(6)).toBeGreaterThan(x(4));
    expect(x(9)).toBeGreaterThan(x(10));
    expect(x(7)).toBeGreaterThan(x(6));
    // nodes in one column do not overlap
    const column = workflow.nodes.filter((n) => n.pos[0] === x(4)).sort((a, b) => a.pos[1] - b.pos[1]);
    for (let i = 1; i < column.length; i++) expect(column[i].pos[1]).toBeGreaterThanOrEqual(column[i - 1].pos[1] + column[i - 1].size[1]);

    expect(byId.get(5)!.widgets_values).toEqual([99, 'fixed', 12, 0.7, 'euler', true]);
    expect(byId.get(5)!.title).toBe('My noise');
    expect(byId.get(6)!.inputs).toEqual([{ name: 'a', type: 'INT', link: 1, widget: { name: 'a' } }]);
    expect(byId.get(6)!.widgets_values).toEqual([0, 2]);
    expect(workflow.links).toContainEqual([1, 4, 0, 6, 0, 'INT']);
    expect(byId.get(4)!.outputs[0].links).toEqual([1]);
    expect(workflow.last_node_id).toBe(10);
    expect(workflow.last_link_id).toBe(workflow.links.length);
  });

  it('round-trips API -> editor -> API', () => {
    const { registry } = makeTestNodes();
    const workflow = apiToEditor(apiPrompt, registry);
    const back = editorToApi(editorWorkflowSchema.parse(JSON.parse(JSON.stringify(workflow))), registry);
    expect(stripMeta(back.prompt)).toEqual(stripMeta(apiPrompt));
    expect(back.prompt['5']._meta?.title).toBe('My noise');
    expect(back.warnings).toEqual([]);
  });

  it('round-trips editor -> API -> editor -> API', () => {
    const { registry } = makeTestNodes();
    const first = editorToApi(editorWorkflowSchema.parse(sampleEditorWorkflow()), registry).prompt;
    const second = editorToApi(apiToEditor(first, registry), registry).prompt;
    expect(second).toEqual(first);
  });

  it('renumbers non-numeric ids and keeps unknown types', () => {
    const { registry } = makeTestNodes();
    const workflow = apiToEditor(
      {
        a: { class_type: 'Int', inputs: { value: 1 } },
        b: { class_type: 'Mystery', inputs: { x: ['a', 0], mode: 'fast' } },
      },
      registry,
    );
    expect(workflow.nodes.map((n) => [n.id, n.type])).toEqual([
      [1, 'Int'],
      [2, 'Mystery'],
    ]);
    expect(workflow.nodes[1].inputs).toEqual([{ name: 'x', type: 'INT', link: 1 }]);
    expect(workflow.nodes[1].widgets_values).toEqual(['fast']);
    expect(editorWorkflowSchema.safeParse(workflow).success).toBe(true);
  });
});
