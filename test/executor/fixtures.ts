import { NodeRegistry } from '../../nodes/registry.js';
import type { NodeSpec } from '../../nodes/spec.js';
import type { ExecutorEvent } from '../../runtime/executor/events.js';
import type { Executor } from '../../runtime/executor/executor.js';
import { validatePrompt } from '../../runtime/executor/validate.js';
import type { ValidatedGraph } from '../../runtime/executor/graph.js';

/** Small real nodes that exercise the engine; each test gets fresh counters. */
export function makeTestNodes() {
  const calls = new Map<string, number>();
  const sink: { node: string; value: unknown }[] = [];
  const state = { models: ['base.safetensors', 'other.safetensors'], stamp: 1, slowStarted: 0 };
  const count = (name: string) => calls.set(name, (calls.get(name) ?? 0) + 1);

  const specs: NodeSpec[] = [
    {
      name: 'Int',
      category: 'test/math',
      description: 'A constant integer',
      inputs: { required: { value: { type: 'INT', default: 0, min: -1000, max: 1000, step: 1 } } },
      outputs: [{ type: 'INT' }],
      execute: ({ value }) => (count('Int'), [value]),
    },
    {
      name: 'Add',
      displayName: 'Add Integers',
      category: 'test/math',
      inputs: { required: { a: { type: 'INT', default: 0 }, b: { type: 'INT', default: 0 } } },
      outputs: [{ type: 'INT', name: 'sum' }],
      execute: ({ a, b }) => (count('Add'), [(a as number) + (b as number)]),
    },
    {
      name: 'ToString',
      category: 'test/text',
      inputs: { required: { value: { type: 'INT', forceInput: true } } },
      outputs: [{ type: 'STRING' }],
      execute: ({ value }) => (count('ToString'), [String(value)]),
    },
    {
      name: 'Concat',
      category: 'test/text',
      inputs: {
        required: { a: { type: 'STRING', default: '' }, b: { type: 'STRING', multiline: true, default: '' } },
        optional: { separator: { type: 'STRING', default: ' ' } },
      },
      outputs: [{ type: 'STRING' }],
      execute: ({ a, b, separator }) => (count('Concat'), [`${a}${separator ?? ''}${b}`]),
    },
    {
      name: 'Noise',
      category: 'test/sampling',
      inputs: {
        required: {
          seed: { type: 'INT', default: 0, min: 0, max: 0xffffffffffffffff, control_after_generate: true },
          steps: { type: 'INT', default: 20, min: 1, max: 100 },
          denoise: { type: 'FLOAT', default: 1, min: 0, max: 1, step: 0.01 },
          sampler: { type: 'COMBO', options: ['euler', 'dpmpp_2m'], default: 'euler' },
          enabled: { type: 'BOOLEAN', default: true },
        },
      },
      outputs: [{ type: 'LATENT' }],
      execute: (inputs) => (count('Noise'), [{ ...inputs }]),
    },
    {
      name: 'PickModel',
      category: 'test/loaders',
      inputs: { required: { ckpt_name: { type: 'COMBO', options: () => state.models } } },
      outputs: [{ type: 'MODEL' }],
      execute: ({ ckpt_name }) => (count('PickModel'), [{ name: ckpt_name, byteSize: () => 1000 }]),
    },
    {
      name: 'Apply',
      category: 'test/loaders',
      inputs: { required: { model: { type: 'MODEL' }, strength: { type: 'FLOAT', default: 1, min: -10, max: 10 } } },
      outputs: [{ type: 'MODEL' }],
      execute: ({ model, strength }) => (count('Apply'), [{ ...(model as object), strength }]),
    },
    {
      name: 'Slow',
      category: 'test/util',
      inputs: { required: { steps: { type: 'INT', default: 3, min: 1, max: 1000 }, ms: { type: 'INT', default: 5, min: 0, max: 10_000 } } },
      outputs: [{ type: 'INT' }],
      async execute({ steps, ms }, ctx) {
        count('Slow');
        state.slowStarted++;
        for (let i = 1; i <= (steps as number); i++) {
          await new Promise((resolve) => setTimeout(resolve, ms as number));
          ctx.progress(i, steps as number, i === 1 ? { format: 'JPEG', data: new Uint8Array([0xff, 0xd8]) } : undefined);
        }
        return [steps];
      },
    },
    {
      name: 'Fail',
      category: 'test/util',
      inputs: { required: { value: { type: 'INT', forceInput: true } } },
      outputs: [{ type: 'INT' }],
      execute: ({ value }) => {
        count('Fail');
        throw new RangeError(`boom at ${value}`);
      },
    },
    {
      name: 'Big',
      category: 'test/util',
      inputs: { required: { bytes: { type: 'INT', default: 100, min: 0, max: 1 << 20 }, tag: { type: 'STRING', default: '' } } },
      outputs: [{ type: 'BLOB' }],
      execute: ({ bytes }) => (count('Big'), [new Uint8Array(bytes as number)]),
    },
    {
      name: 'Stamp',
      category: 'test/util',
      inputs: { required: { path: { type: 'STRING', default: 'a.txt' } } },
      outputs: [{ type: 'STRING' }],
      isChanged: () => state.stamp,
      execute: ({ path }) => (count('Stamp'), [`${path}@${state.stamp}`]),
    },
    {
      name: 'Show',
      category: 'test/output',
      outputNode: true,
      inputs: { required: { value: { type: '*' } }, hidden: { id: 'UNIQUE_ID' } },
      execute: ({ value, id }) => {
        count('Show');
        sink.push({ node: id as string, value });
        return { ui: { text: [String(value)] } };
      },
    },
    {
      name: 'Sink',
      category: 'test/output',
      outputNode: true,
      inputs: { required: { value: { type: '*' } } },
      execute: ({ value }) => {
        count('Sink');
        sink.push({ node: 'sink', value });
      },
    },
  ];
  const registry = new NodeRegistry();
  registry.registerAll(specs);
  registry.alias('IntegerConstant', 'Int');
  return { registry, calls, sink, state, specs };
}

export type TestNodes = ReturnType<typeof makeTestNodes>;

export async function validGraph(registry: NodeRegistry, prompt: unknown): Promise<ValidatedGraph> {
  const result = await validatePrompt(prompt, registry);
  if (!result.ok) throw new Error(`prompt did not validate: ${JSON.stringify(result.error)} ${JSON.stringify(result.node_errors)}`);
  return result.graph;
}

/** Records every event as `[type, data]`. */
export function record(executor: Executor): ExecutorEvent[] {
  const events: ExecutorEvent[] = [];
  executor.events.onAny((e) => events.push(e));
  return events;
}

/** Event types with the node for node-scoped events, e.g. `executing:3`, for compact sequence checks. */
export function sequence(events: ExecutorEvent[]): string[] {
  return events.map((e) => {
    const d = e.data as { node?: string | null };
    return 'node' in d ? `${e.type}:${d.node ?? 'null'}` : e.type;
  });
}

export function callsOf(calls: Map<string, number>): Record<string, number> {
  return Object.fromEntries([...calls].sort(([a], [b]) => a.localeCompare(b)));
}
