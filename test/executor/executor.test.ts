import { describe, expect, it } from 'vitest';
import { Executor } from '../../runtime/executor/executor.js';
import { callsOf, makeTestNodes, record, sequence, validGraph } from './fixtures.js';

/** 1 + 2 -> Add -> ToString -> Concat("sum:", _) -> Show; plus an unconnected Int. */
function chainPrompt(b = 2, prefix = 'sum:') {
  return {
    '1': { class_type: 'Int', inputs: { value: 1 } },
    '2': { class_type: 'Int', inputs: { value: b } },
    '3': { class_type: 'Add', inputs: { a: ['1', 0], b: ['2', 0] } },
    '4': { class_type: 'ToString', inputs: { value: ['3', 0] } },
    '5': { class_type: 'Concat', inputs: { a: prefix, b: ['4', 0], separator: '' } },
    '6': { class_type: 'Show', inputs: { value: ['5', 0] } },
    '9': { class_type: 'Int', inputs: { value: 99 } },
  };
}

describe('Executor', () => {
  it('runs only what the outputs need, in dependency order, and reports ui outputs', async () => {
    const { registry, calls, sink } = makeTestNodes();
    const executor = new Executor();
    const events = record(executor);
    const result = await executor.run(await validGraph(registry, chainPrompt()), { promptId: 'p1' });

    expect(result.status).toBe('success');
    expect(result.executed).toEqual(['1', '2', '3', '4', '5', '6']);
    expect(sink).toEqual([{ node: '6', value: 'sum:3' }]);
    expect(callsOf(calls)).toEqual({ Add: 1, Concat: 1, Int: 2, Show: 1, ToString: 1 }); // node 9 never ran
    expect(result.outputs).toEqual({ '6': { text: ['sum:3'] } });
    expect(Object.keys(result.timings)).toEqual(['1', '2', '3', '4', '5', '6']);
    expect(sequence(events)).toEqual([
      'execution_start',
      'execution_cached',
      ...['1', '2', '3', '4', '5'].map((n) => `executing:${n}`),
      'executing:6',
      'executed:6',
      'execution_success',
      'executing:null',
    ]);
    expect(events[0].data).toMatchObject({ prompt_id: 'p1', timestamp: expect.any(Number) });
    expect(events.find((e) => e.type === 'executed')!.data).toEqual({ node: '6', display_node: '6', output: { text: ['sum:3'] }, prompt_id: 'p1' });
    expect(events.find((e) => e.type === 'execution_cached')!.data).toMatchObject({ nodes: [], prompt_id: 'p1' });
  });

  it('executes nothing on an unchanged re-run, but re-sends cached ui', async () => {
    const { registry, calls } = makeTestNodes();
    const executor = new Executor();
    await executor.run(await validGraph(registry, chainPrompt()));
    const before = callsOf(calls);
    const events = record(executor);
    const result = await executor.run(await validGraph(registry, chainPrompt()), { promptId: 'p2' });

    expect(callsOf(calls)).toEqual(before);
    expect(result.executed).toEqual([]);
    expect(result.cached).toEqual(['1', '2', '3', '4', '5', '6']);
    expect(result.outputs).toEqual({ '6': { text: ['sum:3'] } });
    expect(sequence(events)).toEqual(['execution_start', 'execution_cached', 'executed:6', 'execution_success', 'executing:null']);
    expect(events[1].data).toMatchObject({ nodes: ['1', '2', '3', '4', '5', '6'] });
  });

  it('re-runs only the changed node and its dependents', async () => {
    const { registry, calls, sink } = makeTestNodes();
    const executor = new Executor();
    await executor.run(await validGraph(registry, chainPrompt(2, 'sum:')));
    calls.clear();

    const prefixOnly = await executor.run(await validGraph(registry, chainPrompt(2, 'total=')));
    expect(prefixOnly.executed).toEqual(['5', '6']);
    expect(callsOf(calls)).toEqual({ Concat: 1, Show: 1 });
    calls.clear();

    const valueChange = await executor.run(await validGraph(registry, chainPrompt(5, 'total=')));
    expect(valueChange.executed).toEqual(['2', '3', '4', '5', '6']);
    expect(callsOf(calls)).toEqual({ Add: 1, Concat: 1, Int: 1, Show: 1, ToString: 1 });
    expect(sink.at(-1)).toEqual({ node: '6', value: 'total=6' });
    calls.clear();

    // Back to an earlier prompt: everything is still in the store.
    const back = await executor.run(await validGraph(registry, chainPrompt(2, 'sum:')));
    expect(back.executed).toEqual([]);
    expect(calls.size).toBe(0);
  });

  it('keys by content, so renumbered nodes and aliases hit the same entries', async () => {
    const { registry, calls } = makeTestNodes();
    const executor = new Executor();
    await executor.run(await validGraph(registry, { '1': { class_type: 'Int', inputs: { value: 4 } }, '2': { class_type: 'Sink', inputs: { value: ['1', 0] } } }));
    calls.clear();
    const result = await executor.run(
      await validGraph(registry, { '10': { class_type: 'IntegerConstant', inputs: { value: '4' } }, '20': { class_type: 'Sink', inputs: { value: ['10', 0] } } }),
    );
    expect(result.executed).toEqual([]);
    expect(calls.size).toBe(0);
  });

  it('honours isChanged', async () => {
    const { registry, calls, state, sink } = makeTestNodes();
    const executor = new Executor();
    const prompt = { '1': { class_type: 'Stamp', inputs: { path: 'x.txt' } }, '2': { class_type: 'Sink', inputs: { value: ['1', 0] } } };
    await executor.run(await validGraph(registry, prompt));
    await executor.run(await validGraph(registry, prompt));
    expect(calls.get('Stamp')).toBe(1);
    state.stamp = 2; // the file changed on disk
    const result = await executor.run(await validGraph(registry, prompt));
    expect(result.executed).toEqual(['1', '2']);
    expect(sink.at(-1)!.value).toBe('x.txt@2');
  });

  it('runs the output that needs fewest pending nodes first, and several outputs share upstream work', async () => {
    const { registry, calls } = makeTestNodes();
    const executor = new Executor();
    const prompt = {
      '1': { class_type: 'Int', inputs: { value: 1 } },
      '2': { class_type: 'Int', inputs: { value: 2 } },
      '3': { class_type: 'Add', inputs: { a: ['1', 0], b: ['2', 0] } },
      '4': { class_type: 'Show', inputs: { value: ['3', 0] } },
      '5': { class_type: 'Show', inputs: { value: ['1', 0] } },
    };
    const result = await executor.run(await validGraph(registry, prompt));
    expect(result.executed).toEqual(['1', '5', '2', '3', '4']);
    expect(calls.get('Int')).toBe(2);
  });

  it('can produce a subset of outputs', async () => {
    const { registry } = makeTestNodes();
    const executor = new Executor();
    const prompt = {
      '1': { class_type: 'Int', inputs: { value: 1 } },
      '2': { class_type: 'Show', inputs: { value: ['1', 0] } },
      '3': { class_type: 'Int', inputs: { value: 3 } },
      '4': { class_type: 'Show', inputs: { value: ['3', 0] } },
    };
    const result = await executor.run(await validGraph(registry, prompt), { outputs: ['4'] });
    expect(result.executed).toEqual(['3', '4']);
  });

  it('reports a failing node with its type, inputs and error, and stays usable', async () => {
    const { registry, calls } = makeTestNodes();
    const executor = new Executor();
    const events = record(executor);
    const failing = {
      '1': { class_type: 'Int', inputs: { value: 7 } },
      '2': { class_type: 'Fail', inputs: { value: ['1', 0] } },
      '3': { class_type: 'Show', inputs: { value: ['2', 0] } },
    };
    const result = await executor.run(await validGraph(registry, failing), { promptId: 'bad' });
    expect(result.status).toBe('error');
    expect(result.executed).toEqual(['1']);
    expect(calls.get('Show')).toBeUndefined();
    expect(sequence(events)).toEqual(['execution_start', 'execution_cached', 'executing:1', 'executing:2', 'execution_error', 'executing:null']);
    const error = events.find((e) => e.type === 'execution_error')!.data;
    expect(error).toMatchObject({
      prompt_id: 'bad',
      node_id: '2',
      node_type: 'Fail',
      executed: ['1'],
      exception_message: 'boom at 7',
      exception_type: 'RangeError',
      current_inputs: { value: [7] },
      current_outputs: [],
    });
    expect((error as { traceback: string[] }).traceback.length).toBeGreaterThan(0);

    // Same executor, a good prompt: runs, and reuses node 1 from the failed run.
    calls.clear();
    const ok = await executor.run(
      await validGraph(registry, { '1': { class_type: 'Int', inputs: { value: 7 } }, '3': { class_type: 'Show', inputs: { value: ['1', 0] } } }),
    );
    expect(ok.status).toBe('success');
    expect(ok.executed).toEqual(['3']);
    expect(ok.cached).toEqual(['1']);
  });

  it('treats a malformed return value as a node error', async () => {
    const { registry } = makeTestNodes();
    registry.register({ name: 'Wrong', category: 't', outputs: [{ type: 'INT' }, { type: 'INT' }], execute: () => [1] });
    const executor = new Executor();
    const result = await executor.run(await validGraph(registry, { '1': { class_type: 'Wrong', inputs: {} }, '2': { class_type: 'Sink', inputs: { value: ['1', 1] } } }));
    expect(result.status).toBe('error');
    expect(result.error).toMatchObject({ node_id: '1', exception_type: 'TypeError', exception_message: 'Wrong returned 1 output(s) but declares 2' });
  });

  it('interrupts mid-node: execution_interrupted, and nothing after it runs', async () => {
    const { registry, calls, sink } = makeTestNodes();
    const executor = new Executor();
    const events = record(executor);
    const off = executor.on('progress', ({ value }) => {
      if (value === 2) executor.interrupt();
    });
    const prompt = {
      '1': { class_type: 'Int', inputs: { value: 1 } },
      '2': { class_type: 'Slow', inputs: { steps: 50, ms: 2 } },
      '3': { class_type: 'Add', inputs: { a: ['1', 0], b: ['2', 0] } },
      '4': { class_type: 'Show', inputs: { value: ['3', 0] } },
    };
    const result = await executor.run(await validGraph(registry, prompt), { promptId: 'int' });
    expect(result.status).toBe('interrupted');
    expect(result.interrupted).toMatchObject({ prompt_id: 'int', node_id: '2', node_type: 'Slow', executed: ['1'] });
    expect(calls.get('Add')).toBeUndefined();
    expect(sink).toEqual([]);
    const types = sequence(events);
    expect(types.slice(-2)).toEqual(['execution_interrupted', 'executing:null']);
    expect(types).not.toContain('execution_success');
    expect(types.filter((t) => t === 'progress:2')).toHaveLength(2);
    expect(events.find((e) => e.type === 'preview_image')!.data).toMatchObject({ node: '2', image: { format: 'JPEG' } });

    // The interrupted node was not cached; a new run starts it again and completes.
    off();
    const again = await executor.run(await validGraph(registry, { ...prompt, '2': { class_type: 'Slow', inputs: { steps: 2, ms: 1 } } }));
    expect(again.status).toBe('success');
    expect(again.executed).toEqual(['2', '3', '4']);
  });

  it('interrupts between nodes when a node ignores the signal', async () => {
    const { registry } = makeTestNodes();
    let release!: () => void;
    registry.register({
      name: 'Stubborn',
      category: 't',
      outputs: [{ type: 'INT' }],
      execute: () => new Promise((resolve) => (release = () => resolve([1]))),
    });
    const executor = new Executor();
    const prompt = { '1': { class_type: 'Stubborn', inputs: {} }, '2': { class_type: 'Show', inputs: { value: ['1', 0] } } };
    const running = executor.run(await validGraph(registry, prompt));
    await new Promise((r) => setTimeout(r, 5));
    expect(executor.running).toBe(true);
    expect(executor.interrupt()).toBe(true);
    release();
    const result = await running;
    expect(result.status).toBe('interrupted');
    expect(result.interrupted).toMatchObject({ node_id: '2', executed: ['1'] });
    expect(executor.running).toBe(false);
    expect(executor.interrupt()).toBe(false);
  });

  it('stops on an external AbortSignal too', async () => {
    const { registry } = makeTestNodes();
    const executor = new Executor();
    const controller = new AbortController();
    controller.abort();
    const result = await executor.run(
      await validGraph(registry, { '1': { class_type: 'Int', inputs: { value: 1 } }, '2': { class_type: 'Show', inputs: { value: ['1', 0] } } }),
      { signal: controller.signal },
    );
    expect(result.status).toBe('interrupted');
    expect(result.executed).toEqual([]);
  });

  it('serializes concurrent runs', async () => {
    const { registry } = makeTestNodes();
    const executor = new Executor();
    const order: string[] = [];
    executor.on('execution_start', ({ prompt_id }) => order.push(`start:${prompt_id}`));
    executor.on('execution_success', ({ prompt_id }) => order.push(`end:${prompt_id}`));
    const graph = await validGraph(registry, { '1': { class_type: 'Slow', inputs: { steps: 3, ms: 2 } }, '2': { class_type: 'Show', inputs: { value: ['1', 0] } } });
    const other = await validGraph(registry, { '1': { class_type: 'Slow', inputs: { steps: 4, ms: 2 } }, '2': { class_type: 'Show', inputs: { value: ['1', 0] } } });
    await Promise.all([executor.run(graph, { promptId: 'a' }), executor.run(other, { promptId: 'b' })]);
    expect(order).toEqual(['start:a', 'end:a', 'start:b', 'end:b']);
  });

  it('passes hidden inputs and extra_pnginfo', async () => {
    const { registry } = makeTestNodes();
    let seen: Record<string, unknown> = {};
    registry.register({
      name: 'Save',
      category: 't',
      outputNode: true,
      inputs: { required: { value: { type: 'INT' } }, hidden: { prompt: 'PROMPT', extra: 'EXTRA_PNGINFO', id: 'UNIQUE_ID' } },
      execute: (inputs) => {
        seen = inputs;
        return { ui: { images: [{ filename: 'a.png', subfolder: '', type: 'output' }] } };
      },
    });
    const prompt = { '5': { class_type: 'Save', inputs: { value: 3 } } };
    const result = await new Executor().run(await validGraph(registry, prompt), { extraData: { extra_pnginfo: { workflow: { nodes: [] } } } });
    expect(seen).toEqual({ value: 3, prompt, extra: { workflow: { nodes: [] } }, id: '5' });
    expect(result.outputs['5']).toEqual({ images: [{ filename: 'a.png', subfolder: '', type: 'output' }] });
  });

  it('keeps running when an event listener throws', async () => {
    const { registry } = makeTestNodes();
    const listenerErrors: unknown[] = [];
    const executor = new Executor({ onListenerError: (e) => listenerErrors.push(e) });
    executor.on('executing', () => {
      throw new Error('listener bug');
    });
    const result = await executor.run(await validGraph(registry, { '1': { class_type: 'Int', inputs: { value: 1 } }, '2': { class_type: 'Show', inputs: { value: ['1', 0] } } }));
    expect(result.status).toBe('success');
    expect(listenerErrors.length).toBe(3);
  });
});
