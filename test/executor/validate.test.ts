import { describe, expect, it } from 'vitest';
import { typesCompatible, validatePrompt, type ValidationResult } from '../../runtime/executor/validate.js';
import { makeTestNodes } from './fixtures.js';

function errorsOf(result: ValidationResult, id: string) {
  return result.node_errors[id]?.errors ?? [];
}

const noise = (inputs: Record<string, unknown>) => ({
  class_type: 'Noise',
  inputs: { seed: 1, steps: 20, denoise: 0.5, sampler: 'euler', enabled: true, ...inputs },
});

describe('validatePrompt', () => {
  it('accepts a good prompt, coerces widget values and resolves aliases', async () => {
    const { registry } = makeTestNodes();
    const result = await validatePrompt(
      {
        '1': noise({ seed: '42', steps: 20.0, denoise: '0.25' }),
        '2': { class_type: 'Sink', inputs: { value: ['1', 0] } },
        '3': { class_type: 'IntegerConstant', inputs: { value: 5 }, _meta: { title: 'Five' } },
        '4': { class_type: 'Show', inputs: { value: [3, 0] } },
      },
      registry,
    );
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.outputs).toEqual(['2', '4']);
    expect(result.node_errors).toEqual({});
    expect(result.graph.nodes.get('1')!.widgets).toEqual({ seed: 42, steps: 20, denoise: 0.25, sampler: 'euler', enabled: true });
    expect(result.graph.nodes.get('3')).toMatchObject({ classType: 'IntegerConstant', title: 'Five', def: { name: 'Int' } });
    expect(result.graph.nodes.get('4')!.links).toEqual({ value: { node: '3', slot: 0 } });
  });

  it('reports a malformed prompt with JSON paths', async () => {
    const { registry } = makeTestNodes();
    const result = await validatePrompt({ '1': { inputs: {} }, '2': { class_type: 'Int', inputs: 'x' } }, registry);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.type).toBe('invalid_prompt');
    expect(result.error.details).toContain('$["1"].class_type');
    expect(result.error.details).toContain('$["2"].inputs');
    expect(await validatePrompt('{not json', registry)).toMatchObject({ ok: false, error: { type: 'invalid_prompt' } });
  });

  it('lists every unknown node type at once', async () => {
    const { registry } = makeTestNodes();
    const result = await validatePrompt(
      {
        '1': { class_type: 'Nope', inputs: {} },
        '2': { class_type: 'Int', inputs: { value: 1 } },
        '3': { class_type: 'AlsoNope', inputs: {}, _meta: { title: 'Mine' } },
      },
      registry,
    );
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.type).toBe('missing_node_type');
    expect(result.error.message).toContain("'Nope'");
    expect(result.error.message).toContain("'AlsoNope'");
    expect(result.error.extra_info.missing_nodes).toEqual([
      { node_id: '1', class_type: 'Nope', node_title: null },
      { node_id: '3', class_type: 'AlsoNope', node_title: 'Mine' },
    ]);
    expect(Object.keys(result.node_errors)).toEqual(['1', '3']);
    expect(errorsOf(result, '3')[0].type).toBe('missing_node_type');
  });

  it('refuses a prompt without output nodes', async () => {
    const { registry } = makeTestNodes();
    const result = await validatePrompt({ '1': { class_type: 'Int', inputs: { value: 1 } } }, registry);
    expect(result).toMatchObject({ ok: false, error: { type: 'prompt_no_outputs', message: 'Prompt has no outputs' } });
  });

  it('reports each input error kind with ComfyUI types and extra_info.input_name', async () => {
    const { registry } = makeTestNodes();
    const cases: [string, Record<string, unknown>, string, string][] = [
      ['missing', { '1': { class_type: 'Add', inputs: { a: 1 } } }, 'required_input_missing', 'b'],
      ['too small', { '1': noise({ steps: 0 }) }, 'value_smaller_than_min', 'steps'],
      ['too big', { '1': noise({ denoise: 1.5 }) }, 'value_bigger_than_max', 'denoise'],
      ['not in list', { '1': noise({ sampler: 'ddim' }) }, 'value_not_in_list', 'sampler'],
      ['wrong type int', { '1': noise({ steps: 2.5 }) }, 'invalid_input_type', 'steps'],
      ['wrong type bool', { '1': noise({ enabled: 'yes' }) }, 'invalid_input_type', 'enabled'],
      ['wrong type string', { '1': { class_type: 'Concat', inputs: { a: { x: 1 }, b: '' } } }, 'invalid_input_type', 'a'],
      ['literal for link type', { '1': { class_type: 'Apply', inputs: { model: 'base', strength: 1 } } }, 'invalid_input_type', 'model'],
      ['bad link shape', { '1': { class_type: 'Add', inputs: { a: ['2'], b: 1 } } }, 'bad_linked_input', 'a'],
      ['missing linked node', { '1': { class_type: 'Add', inputs: { a: ['77', 0], b: 1 } } }, 'bad_linked_input', 'a'],
      ['slot out of range', { '1': { class_type: 'Add', inputs: { a: ['2', 3], b: 1 } }, '2': { class_type: 'Int', inputs: { value: 1 } } }, 'bad_linked_input', 'a'],
      ['type mismatch', { '1': { class_type: 'Add', inputs: { a: ['2', 0], b: 1 } }, '2': { class_type: 'Concat', inputs: { a: '', b: '' } } }, 'return_type_mismatch', 'a'],
    ];
    for (const [label, nodes, type, input] of cases) {
      const prompt = { ...nodes, '99': { class_type: 'Sink', inputs: { value: ['1', 0] } } };
      const result = await validatePrompt(prompt, registry);
      expect(result.ok, label).toBe(false);
      if (result.ok) continue;
      expect(result.error.type, label).toBe('prompt_outputs_failed_validation');
      const [error] = errorsOf(result, '1');
      expect(error?.type, label).toBe(type);
      expect(error.extra_info.input_name, label).toBe(input);
      expect(result.node_errors['1'].dependent_outputs, label).toEqual(['99']);
      expect(result.node_errors['1'].class_type, label).toBe(nodes['1'] && (nodes['1'] as { class_type: string }).class_type);
      expect(result.node_errors['99'], `${label}: the output itself is not at fault`).toBeUndefined();
    }
  });

  it('words messages the way ComfyUI does', async () => {
    const { registry } = makeTestNodes();
    const result = await validatePrompt(
      {
        '1': noise({ steps: 500, sampler: 'ddim' }),
        '2': { class_type: 'Add', inputs: { a: ['3', 0], b: 1 } },
        '3': { class_type: 'Concat', inputs: { a: '', b: '' } },
        '4': { class_type: 'Sink', inputs: { value: ['1', 0] } },
        '5': { class_type: 'Sink', inputs: { value: ['2', 0] } },
      },
      registry,
    );
    expect(errorsOf(result, '1')).toMatchObject([
      { type: 'value_bigger_than_max', message: 'Value 500 bigger than max of 100', details: 'steps' },
      { type: 'value_not_in_list', message: 'Value not in list', details: `sampler: 'ddim' not in ["euler","dpmpp_2m"]` },
    ]);
    expect(errorsOf(result, '2')).toMatchObject([{ type: 'return_type_mismatch', details: 'a, STRING != INT', extra_info: { received_type: 'STRING', linked_node: ['3', 0] } }]);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.details).toContain('Value 500 bigger than max of 100: steps');
  });

  it('checks combo values against a dynamic provider at validation time', async () => {
    const { registry, state } = makeTestNodes();
    const prompt = { '1': { class_type: 'PickModel', inputs: { ckpt_name: 'new.safetensors' } }, '2': { class_type: 'Sink', inputs: { value: ['1', 0] } } };
    const before = await validatePrompt(prompt, registry);
    expect(errorsOf(before, '1')).toMatchObject([{ type: 'value_not_in_list', details: `ckpt_name: 'new.safetensors' not in ["base.safetensors","other.safetensors"]` }]);
    state.models.push('new.safetensors');
    expect((await validatePrompt(prompt, registry)).ok).toBe(true);

    state.models = Array.from({ length: 30 }, (_, i) => `m${i}.safetensors`);
    const long = await validatePrompt(prompt, registry);
    expect(errorsOf(long, '1')[0]).toMatchObject({ details: "ckpt_name: 'new.safetensors' not in (list of length 30)", extra_info: { input_config: null } });
  });

  it('reports a throwing combo provider on the node', async () => {
    const { registry } = makeTestNodes();
    registry.register({
      name: 'Broken',
      category: 't',
      inputs: { required: { f: { type: 'COMBO', options: () => Promise.reject(new Error('no folder')) } } },
      outputs: [{ type: 'X' }],
      execute: () => ['x'],
    });
    const result = await validatePrompt({ '1': { class_type: 'Broken', inputs: { f: 'a' } }, '2': { class_type: 'Sink', inputs: { value: ['1', 0] } } }, registry);
    expect(errorsOf(result, '1')).toMatchObject([{ type: 'exception_during_validation', details: 'f: no folder' }]);
  });

  it('detects cycles, including a self-loop', async () => {
    const { registry } = makeTestNodes();
    const result = await validatePrompt(
      {
        '1': { class_type: 'Add', inputs: { a: ['3', 0], b: 1 } },
        '2': { class_type: 'Add', inputs: { a: ['1', 0], b: 1 } },
        '3': { class_type: 'Add', inputs: { a: ['2', 0], b: 1 } },
        '4': { class_type: 'Sink', inputs: { value: ['3', 0] } },
        '5': { class_type: 'Add', inputs: { a: ['5', 0], b: 1 } },
        '6': { class_type: 'Sink', inputs: { value: ['5', 0] } },
      },
      registry,
    );
    expect(result.ok).toBe(false);
    for (const id of ['1', '2', '3']) expect(errorsOf(result, id)).toMatchObject([{ type: 'dependency_cycle', extra_info: { cycle: ['1', '2', '3'] } }]);
    expect(errorsOf(result, '5')).toMatchObject([{ type: 'dependency_cycle', extra_info: { cycle: ['5'] } }]);
    expect(result.node_errors['3'].dependent_outputs).toEqual(['4']);
    expect(result.node_errors['5'].dependent_outputs).toEqual(['6']);
  });

  it('accepts the prompt when one output validates, listing the failing branch', async () => {
    const { registry } = makeTestNodes();
    const result = await validatePrompt(
      {
        '1': { class_type: 'Int', inputs: { value: 5000 } },
        '2': { class_type: 'Show', inputs: { value: ['1', 0] } },
        '3': { class_type: 'Int', inputs: { value: 3 } },
        '4': { class_type: 'Show', inputs: { value: ['3', 0] } },
        '5': { class_type: 'Add', inputs: { a: ['1', 0], b: ['3', 0] } },
        '6': { class_type: 'Show', inputs: { value: ['5', 0] } },
        // Not needed by any output: never validated, never reported.
        '7': { class_type: 'Int', inputs: { value: 'garbage' } },
      },
      registry,
    );
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.outputs).toEqual(['4']);
    expect(Object.keys(result.node_errors)).toEqual(['1']);
    expect(result.node_errors['1'].dependent_outputs).toEqual(['2', '6']);
    expect([...result.graph.nodes.keys()]).toEqual(['3', '4']);
  });

  it('restricts to requested outputs', async () => {
    const { registry } = makeTestNodes();
    const prompt = {
      '1': { class_type: 'Int', inputs: { value: 5000 } },
      '2': { class_type: 'Show', inputs: { value: ['1', 0] } },
      '3': { class_type: 'Int', inputs: { value: 3 } },
      '4': { class_type: 'Show', inputs: { value: ['3', 0] } },
    };
    expect(await validatePrompt(prompt, registry, { outputs: ['2'] })).toMatchObject({ ok: false, error: { type: 'prompt_outputs_failed_validation' } });
    expect(await validatePrompt(prompt, registry, { outputs: ['4'] })).toMatchObject({ ok: true, outputs: ['4'] });
  });

  it('treats optional inputs as optional and lets widget inputs take links', async () => {
    const { registry } = makeTestNodes();
    const result = await validatePrompt(
      {
        '1': { class_type: 'Int', inputs: { value: 2 } },
        '2': { class_type: 'Noise', inputs: { seed: ['1', 0], steps: 10, denoise: 1, sampler: 'euler', enabled: false } },
        '3': { class_type: 'Concat', inputs: { a: 'x', b: 'y' } },
        '4': { class_type: 'Sink', inputs: { value: ['2', 0] } },
        '5': { class_type: 'Sink', inputs: { value: ['3', 0] } },
      },
      registry,
    );
    expect(result).toMatchObject({ ok: true, outputs: ['4', '5'], node_errors: {} });
  });

  it('matches link types like ComfyUI', () => {
    expect(typesCompatible('IMAGE', 'IMAGE')).toBe(true);
    expect(typesCompatible('IMAGE', '*')).toBe(true);
    expect(typesCompatible('*', 'MODEL')).toBe(true);
    expect(typesCompatible('IMAGE', 'IMAGE,MASK')).toBe(true);
    expect(typesCompatible('MASK, LATENT', 'IMAGE,MASK')).toBe(true);
    expect(typesCompatible('MODEL', 'CLIP')).toBe(false);
  });
});
