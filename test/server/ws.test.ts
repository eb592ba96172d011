import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectWs, getJson, postJson, startTestServer, type TestServer, type WsMessage } from './helpers.js';

let t: TestServer;
let sockets: Awaited<ReturnType<typeof connectWs>>[] = [];
beforeAll(async () => {
  t = await startTestServer();
});
afterEach(() => {
  for (const s of sockets) s.close();
  sockets = [];
});
afterAll(async () => {
  await t.close();
});

async function client(id: string) {
  const c = await connectWs(t.url, id);
  sockets.push(c);
  await c.waitFor((m) => m.type === 'status');
  return c;
}

/** One prompt's messages (plus status, and binary frames sent while it ran) as compact strings. */
function seq(messages: WsMessage[], promptId: string): string[] {
  const out: string[] = [];
  let running = false;
  for (const m of messages) {
    if (m.type === 'binary') {
      if (running) out.push(`binary:${m.eventType}/${m.imageType}`);
    } else if (m.type === 'status') out.push(`status:${m.data.status.exec_info.queue_remaining}`);
    else if (m.data?.prompt_id === promptId) {
      out.push('node' in m.data ? `${m.type}:${m.data.node ?? 'null'}` : m.type);
      if (m.type === 'execution_start') running = true;
      if (m.type === 'executing' && m.data.node === null) running = false;
    }
  }
  return out;
}

const done = (id: string) => (m: WsMessage) => m.type === 'executing' && m.data.node === null && m.data.prompt_id === id;

const slowPrompt = (value: number, steps = 2, ms = 5) => ({
  '1': { class_type: 'TestInt', inputs: { value } },
  '2': { class_type: 'TestSlow', inputs: { value: ['1', 0], steps, ms } },
  '3': { class_type: 'TestShow', inputs: { value: ['2', 0] } },
});

describe('websocket', () => {
  it('greets a client with status and its sid, and keeps a valid requested clientId', async () => {
    const c = await connectWs(t.url, 'client-abc');
    sockets.push(c);
    const hello = await c.waitFor((m) => m.type === 'status');
    expect(hello).toEqual({ type: 'status', data: { status: { exec_info: { queue_remaining: 0 } }, sid: 'client-abc' } });
    const odd = await connectWs(t.url, '..%2F..');
    sockets.push(odd);
    const generated = await odd.waitFor((m) => m.type === 'status');
    expect((generated as { data: { sid: string } }).data.sid).toMatch(/^[0-9a-f]{32}$/);
  });

  it('sends a run as ComfyUI does: start, cached, executing, progress with binary previews, executed, success, executing null', async () => {
    const c = await client('run-client');
    const { body } = await postJson(`${t.url}/prompt`, { prompt: slowPrompt(101), client_id: 'run-client' });
    await c.waitFor(done(body.prompt_id));
    await c.waitFor((m) => m.type === 'status' && m.data.status.exec_info.queue_remaining === 0, 5000, 1);
    expect(seq(c.messages.slice(1), body.prompt_id)).toEqual([
      'status:1',
      'status:1',
      'execution_start',
      'execution_cached',
      'executing:1',
      'executing:2',
      'progress:2',
      'binary:1/1',
      'progress:2',
      'binary:1/1',
      'executing:3',
      'executed:3',
      'execution_success',
      'executing:null',
      'status:0',
    ]);
    const progress = c.messages.find((m) => m.type === 'progress');
    expect(progress).toEqual({ type: 'progress', data: { value: 1, max: 2, prompt_id: body.prompt_id, node: '2' } });
    const executed = c.messages.find((m) => m.type === 'executed');
    expect(executed).toEqual({ type: 'executed', data: { node: '3', display_node: '3', output: { text: ['101'] }, prompt_id: body.prompt_id } });
  });

  it('replays cached outputs on an unchanged re-run without executing anything', async () => {
    const c = await client('cache-client');
    const first = await postJson(`${t.url}/prompt`, { prompt: slowPrompt(202), client_id: 'cache-client' });
    await c.waitFor(done(first.body.prompt_id));
    const slowRuns = t.nodes.calls.get('TestSlow');
    const again = await postJson(`${t.url}/prompt`, { prompt: slowPrompt(202), client_id: 'cache-client' });
    await c.waitFor(done(again.body.prompt_id));
    expect(t.nodes.calls.get('TestSlow')).toBe(slowRuns);
    expect(seq(c.messages, again.body.prompt_id).filter((s) => !s.startsWith('status'))).toEqual([
      'execution_start',
      'execution_cached',
      'executed:3',
      'execution_success',
      'executing:null',
    ]);
    const cached = c.messages.find((m) => m.type === 'execution_cached' && m.data.prompt_id === again.body.prompt_id);
    expect((cached as { data: { nodes: string[] } }).data.nodes).toEqual(['1', '2', '3']);
  });

  it('reports a failing node with execution_error and runs the next prompt anyway', async () => {
    const c = await client('error-client');
    const failing = await postJson(`${t.url}/prompt`, {
      prompt: { '1': { class_type: 'TestInt', inputs: { value: 303 } }, '2': { class_type: 'TestFail', inputs: { value: ['1', 0] } }, '3': { class_type: 'TestShow', inputs: { value: ['2', 0] } } },
      client_id: 'error-client',
    });
    const next = await postJson(`${t.url}/prompt`, { prompt: slowPrompt(304, 1), client_id: 'error-client' });
    await c.waitFor(done(next.body.prompt_id));
    expect(seq(c.messages, failing.body.prompt_id).filter((s) => !s.startsWith('status'))).toEqual([
      'execution_start',
      'execution_cached',
      'executing:1',
      'executing:2',
      'execution_error',
      'executing:null',
    ]);
    const error = c.messages.find((m) => m.type === 'execution_error')!;
    expect(error.type === 'execution_error' && error.data).toMatchObject({
      node_id: '2',
      node_type: 'TestFail',
      exception_type: 'RangeError',
      exception_message: 'boom at 303',
      executed: ['1'],
      current_inputs: { value: [303] },
    });
    expect(seq(c.messages, next.body.prompt_id)).toContain('execution_success');
    const history = (await getJson(`${t.url}/history/${failing.body.prompt_id}`)).body[failing.body.prompt_id];
    expect(history.status).toMatchObject({ status_str: 'error', completed: false });
  });

  it('interrupts a running prompt: execution_interrupted, then the queue moves on', async () => {
    const c = await client('interrupt-client');
    const long = await postJson(`${t.url}/prompt`, { prompt: slowPrompt(405, 500, 20), client_id: 'interrupt-client' });
    const after = await postJson(`${t.url}/prompt`, { prompt: slowPrompt(406, 1), client_id: 'interrupt-client' });
    await c.waitFor((m) => m.type === 'progress' && m.data.prompt_id === long.body.prompt_id);
    expect((await postJson(`${t.url}/interrupt`, '')).status).toBe(200);
    await c.waitFor(done(after.body.prompt_id));
    const steps = seq(c.messages, long.body.prompt_id).filter((s) => !s.startsWith('status') && !s.startsWith('binary') && !s.startsWith('progress'));
    expect(steps).toEqual(['execution_start', 'execution_cached', 'executing:1', 'executing:2', 'execution_interrupted', 'executing:null']);
    const interrupted = c.messages.find((m) => m.type === 'execution_interrupted')!;
    expect(interrupted.type !== 'binary' && interrupted.data).toMatchObject({ node_id: '2', node_type: 'TestSlow', executed: ['1'] });
    expect(seq(c.messages, after.body.prompt_id)).toContain('execution_success');
  });

  it('routes a prompt\'s events to the client that queued it, and broadcasts queue status', async () => {
    const owner = await client('owner');
    const other = await client('bystander');
    const { body } = await postJson(`${t.url}/prompt`, { prompt: slowPrompt(507, 1), client_id: 'owner' });
    await owner.waitFor(done(body.prompt_id));
    await other.waitFor((m) => m.type === 'status' && m.data.status.exec_info.queue_remaining === 0, 5000, 1);
    expect(other.messages.some((m) => m.type !== 'status')).toBe(false);
    // A prompt without client_id is everybody's.
    const open = await postJson(`${t.url}/prompt`, { prompt: slowPrompt(508, 1) });
    await other.waitFor(done(open.body.prompt_id));
  });

  it('tells a client reconnecting mid-run which node is executing', async () => {
    t.nodes.closeGate();
    const first = await client('reconnector');
    const { body } = await postJson(`${t.url}/prompt`, {
      prompt: { '1': { class_type: 'TestInt', inputs: { value: 609 } }, '2': { class_type: 'TestGate', inputs: { value: ['1', 0] } }, '3': { class_type: 'TestShow', inputs: { value: ['2', 0] } } },
      client_id: 'reconnector',
    });
    await first.waitFor((m) => m.type === 'executing' && m.data.node === '2');
    first.close();
    const second = await client('reconnector');
    expect(second.messages[1]).toEqual({ type: 'executing', data: { node: '2', display_node: '2', prompt_id: body.prompt_id } });
    t.nodes.gate.release();
    await second.waitFor(done(body.prompt_id));
  });
});
