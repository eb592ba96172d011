import { describe, expect, it } from 'vitest';
import { NodeRegistry, NodeSpecError } from '../../nodes/registry.js';
import type { NodeSpec } from '../../nodes/spec.js';
import { makeTestNodes } from './fixtures.js';

const base = { category: 'test', execute: () => [] } as const;

function specIssues(spec: unknown): string[] {
  try {
    new NodeRegistry().register(spec as NodeSpec);
  } catch (e) {
    if (e instanceof NodeSpecError) return e.issues.map((i) => `${i.path}: ${i.message}`);
    throw e;
  }
  return [];
}

describe('node specs', () => {
  it('rejects malformed specs with paths to the bad field', () => {
    expect(specIssues({ ...base, name: 'A', inputs: { required: { n: { type: 'INT', min: 5, max: 1 } } } })).toEqual(['inputs.required.n.min: min 5 > max 1']);
    expect(specIssues({ ...base, name: 'A', inputs: { required: { n: { type: 'INT', default: 1.5 } } } })[0]).toMatch(/^inputs\.required\.n\.default: /);
    expect(specIssues({ ...base, name: 'A', inputs: { required: { n: { type: 'FLOAT', default: 3, max: 2 } } } })).toEqual(['inputs.required.n.default: default 3 outside [undefined, 2]']);
    expect(specIssues({ ...base, name: 'A', inputs: { required: { n: { type: 'INT', mni: 0 } } } })).toEqual(['inputs.required.n: Unrecognized key: "mni"']);
    expect(specIssues({ ...base, name: 'A', inputs: { required: { c: { type: 'COMBO', options: ['a'], default: 'b' } } } })).toEqual([
      'inputs.required.c.default: default "b" is not one of the options',
    ]);
    expect(specIssues({ ...base, name: 'A', inputs: { required: { c: { type: 'COMBO' } } } })[0]).toMatch(/^inputs\.required\.c\.options: /);
    expect(specIssues({ ...base, name: 'A', inputs: { required: { m: { type: 'model lower' } } } })[0]).toMatch(/^inputs\.required\.m\.type: /);
    expect(specIssues({ ...base, name: 'A', inputs: { required: { '1': { type: 'INT' } } } })[0]).toMatch(/integers/);
    expect(specIssues({ ...base, name: 'A', inputs: { required: { x: { type: 'INT' } }, optional: { x: { type: 'INT' } } } })).toEqual([
      'inputs.optional.x: input "x" is declared twice',
    ]);
    expect(specIssues({ name: 'A', category: 'x' })).toEqual(['execute: expected a function']);
    expect(specIssues({ ...base, name: '' })[0]).toMatch(/^name: /);
    expect(specIssues({ ...base, name: 'A', outputs: [{ name: 'x' }] })[0]).toMatch(/^outputs\.0\.type: /);
  });

  it('refuses duplicate names and aliases that shadow nodes', () => {
    const registry = new NodeRegistry();
    registry.register({ ...base, name: 'A' });
    expect(() => registry.register({ ...base, name: 'A' })).toThrow(/already registered/);
    expect(() => registry.alias('A', 'B')).toThrow(/is registered/);
    registry.alias('OldA', 'A');
    expect(registry.get('OldA')?.name).toBe('A');
    expect(() => registry.register({ ...base, name: 'OldA' })).toThrow(/alias/);
    expect(registry.aliases()).toEqual({ OldA: 'A' });
    expect(registry.names()).toEqual(['A']);
  });

  it('keeps input order: required then optional, declaration order within', () => {
    const { registry } = makeTestNodes();
    const def = registry.require('Concat');
    expect(def.inputs.map((i) => [i.name, i.required, i.widget])).toEqual([
      ['a', true, true],
      ['b', true, true],
      ['separator', false, true],
    ]);
    expect(registry.require('ToString').inputs[0].widget).toBe(false); // forceInput
    expect(registry.require('Apply').inputs[0].widget).toBe(false); // MODEL
  });
});

describe('object_info', () => {
  it('has ComfyUI fields and input shapes', async () => {
    const { registry } = makeTestNodes();
    const info = await registry.objectInfo();
    expect(Object.keys(info)).toEqual(registry.names());
    expect(info['Noise']).toEqual({
      input: {
        required: {
          seed: ['INT', { default: 0, min: 0, max: 0xffffffffffffffff, control_after_generate: true }],
          steps: ['INT', { default: 20, min: 1, max: 100 }],
          denoise: ['FLOAT', { default: 1, min: 0, max: 1, step: 0.01 }],
          sampler: [['euler', 'dpmpp_2m'], { default: 'euler' }],
          enabled: ['BOOLEAN', { default: true }],
        },
      },
      input_order: { required: ['seed', 'steps', 'denoise', 'sampler', 'enabled'] },
      output: ['LATENT'],
      output_is_list: [false],
      output_name: ['LATENT'],
      name: 'Noise',
      display_name: 'Noise',
      description: '',
      python_module: 'resflow',
      category: 'test/sampling',
      output_node: false,
    });
    expect(info['Concat'].input.optional).toEqual({ separator: ['STRING', { default: ' ' }] });
    expect(info['Concat'].input.required.b).toEqual(['STRING', { multiline: true, default: '' }]);
    expect(info['Concat'].input_order).toEqual({ required: ['a', 'b'], optional: ['separator'] });
    expect(info['Add']).toMatchObject({ display_name: 'Add Integers', output_name: ['sum'], output: ['INT'] });
    expect(info['Apply'].input.required.model).toEqual(['MODEL']);
    expect(info['Show']).toMatchObject({ output_node: true, output: [], input: { hidden: { id: 'UNIQUE_ID' } }, input_order: { hidden: ['id'] } });
    expect(info['Int'].description).toBe('A constant integer');
    expect(JSON.parse(JSON.stringify(info))).toEqual(info); // plain JSON, no functions leak
  });

  it('evaluates dynamic combo providers at describe time', async () => {
    const { registry, state } = makeTestNodes();
    expect((await registry.nodeInfo('PickModel')).input.required.ckpt_name).toEqual([['base.safetensors', 'other.safetensors'], {}]);
    state.models = ['fresh.safetensors'];
    expect((await registry.nodeInfo('PickModel')).input.required.ckpt_name).toEqual([['fresh.safetensors'], {}]);
  });

  it('reports list outputs and tooltips', async () => {
    const registry = new NodeRegistry();
    registry.register({ ...base, name: 'L', outputs: [{ type: 'IMAGE', isList: true, tooltip: 'frames' }, { type: 'INT', name: 'count' }], deprecated: true });
    expect(await registry.nodeInfo('L')).toMatchObject({
      output: ['IMAGE', 'INT'],
      output_is_list: [true, false],
      output_name: ['IMAGE', 'count'],
      output_tooltips: ['frames', ''],
      deprecated: true,
    });
  });
});
