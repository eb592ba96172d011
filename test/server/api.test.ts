import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, postJson, startTestServer, type TestServer } from './helpers.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => {
  await t.close();
});

const showInt = (value = 1) => ({
  '1': { class_type: 'TestInt', inputs: { value } },
  '2': { class_type: 'TestShow', inputs: { value: ['1', 0] } },
});

describe('node and system info', () => {
  it('lists every registered node in /object_info, bare and under /api', async () => {
    const bare = await getJson(`${t.url}/object_info`);
    const api = await getJson(`${t.url}/api/object_info`);
    expect(bare.status).toBe(200);
    expect(api.body).toEqual(bare.body);
    expect(Object.keys(bare.body)).toEqual(expect.arrayContaining(['KSampler', 'CheckpointLoaderSimple', 'SaveImage', 'TestInt']));
    expect(bare.body.TestInt).toMatchObject({ name: 'TestInt', input: { required: { value: ['INT', { default: 0, min: -1000, max: 1000 }] } }, output: ['INT'] });
  });

  it('describes one class, and answers {} for an unknown one as ComfyUI does', async () => {
    const one = await getJson(`${t.url}/api/object_info/KSampler`);
    expect(Object.keys(one.body)).toEqual(['KSampler']);
    expect(one.body.KSampler.input.required.seed[1]).toMatchObject({ control_after_generate: true });
    expect((await getJson(`${t.url}/object_info/NoSuchNode`)).body).toEqual({});
  });

  it('reports system stats, features, embeddings and extensions', async () => {
    const stats = await getJson(`${t.url}/system_stats`);
    expect(stats.body.system).toMatchObject({ os: process.platform, embedded_python: false });
    expect(stats.body.devices[0]).toMatchObject({ type: 'cpu' });
    expect((await getJson(`${t.url}/api/features`)).body).toMatchObject({ max_upload_size: 50 * 1024 * 1024 });
    expect((await getJson(`${t.url}/embeddings`)).body).toEqual([]);
    // ComfyUI lists embeddings as prompts name them: relative path, no extension.
    mkdirSync(join(t.env.folders.modelsDir, 'embeddings', 'styles'), { recursive: true });
    writeFileSync(join(t.env.folders.modelsDir, 'embeddings', 'easynegative.safetensors'), '');
    writeFileSync(join(t.env.folders.modelsDir, 'embeddings', 'styles', 'old.pt'), '');
    writeFileSync(join(t.env.folders.modelsDir, 'embeddings', 'notes.txt'), '');
    expect((await getJson(`${t.url}/embeddings`)).body).toEqual(['easynegative', 'styles/old']);
    expect((await getJson(`${t.url}/api/extensions`)).body).toEqual([]);
  });

  it('lists model folders and their files, 404 for an unknown folder', async () => {
    expect((await getJson(`${t.url}/models`)).body).toEqual(expect.arrayContaining(['checkpoints', 'loras', 'resadapters']));
    expect((await getJson(`${t.url}/api/models/checkpoints`)).body).toEqual([]);
    const bad = await getJson(`${t.url}/models/secrets`);
    expect(bad.status).toBe(404);
    expect(bad.body.error.message).toMatch(/Unknown model folder "secrets"/);
  });

  it('serves the bundled default workflow in editor format', async () => {
    const res = await getJson(`${t.url}/api/workflows/default`);
    expect(res.status).toBe(200);
    expect(res.body.version).toBe(0.4);
    expect(res.body.nodes.map((n: { type: string }) => n.type)).toEqual(expect.arrayContaining(['KSampler', 'ApplyResAdapter', 'SaveImage']));
    expect((await getJson(`${t.url}/api/workflows`)).body).toContain('resadapter-txt2img-512.json');
    expect((await getJson(`${t.url}/api/workflows/..%2Fpackage.json`)).status).toBe(400);
    expect((await getJson(`${t.url}/api/workflows/missing.json`)).status).toBe(404);
  });
});

describe('POST /prompt', () => {
  it('queues a valid prompt and records it in history', async () => {
    const res = await postJson(`${t.url}/prompt`, { prompt: showInt(7), client_id: 'api-test' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ prompt_id: expect.any(String), number: expect.any(Number), node_errors: {} });
    await t.server.queue.idle();
    const history = await getJson(`${t.url}/api/history/${res.body.prompt_id}`);
    const entry = history.body[res.body.prompt_id];
    expect(entry.outputs).toEqual({ '2': { text: ['7'] } });
    expect(entry.status).toMatchObject({ status_str: 'success', completed: true });
    expect(entry.status.messages.map((m: [string]) => m[0])).toEqual(['execution_start', 'execution_cached', 'execution_success']);
    expect(entry.prompt).toEqual([res.body.number, res.body.prompt_id, expect.any(Object), { client_id: 'api-test' }, ['2']]);
  });

  it('accepts a caller-chosen prompt_id and refuses it while still queued', async () => {
    t.nodes.closeGate();
    const prompt = { '1': { class_type: 'TestInt', inputs: { value: 3 } }, '2': { class_type: 'TestGate', inputs: { value: ['1', 0] } }, '3': { class_type: 'TestShow', inputs: { value: ['2', 0] } } };
    const first = await postJson(`${t.url}/prompt`, { prompt, prompt_id: 'my-id-1' });
    expect(first.body.prompt_id).toBe('my-id-1');
    const again = await postJson(`${t.url}/prompt`, { prompt, prompt_id: 'my-id-1' });
    expect(again.status).toBe(400);
    expect(again.body.error.type).toBe('duplicate_prompt_id');
    t.nodes.gate.release();
    await t.server.queue.idle();
  });

  it('rejects invalid JSON with a clear error', async () => {
    const res = await postJson(`${t.url}/prompt`, '{"prompt": {');
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: { type: 'invalid_json', message: 'The request body is not valid JSON' }, node_errors: {} });
  });

  it('rejects a body without prompt, and one that is not an object', async () => {
    const none = await postJson(`${t.url}/prompt`, { client_id: 'x' });
    expect(none.status).toBe(400);
    expect(none.body.error.type).toBe('no_prompt');
    const arr = await postJson(`${t.url}/prompt`, [1, 2]);
    expect(arr.status).toBe(400);
    expect(arr.body.error.type).toBe('invalid_request');
    const badClient = await postJson(`${t.url}/prompt`, { prompt: showInt(), client_id: '../../x' });
    expect(badClient.status).toBe(400);
    expect(badClient.body.error.details).toMatch(/client_id/);
  });

  it('reports unknown node types in ComfyUI shape', async () => {
    const res = await postJson(`${t.url}/api/prompt`, { prompt: { '5': { class_type: 'DefinitelyNotANode', inputs: {} } } });
    expect(res.status).toBe(400);
    expect(res.body.error.type).toBe('missing_node_type');
    expect(res.body.node_errors['5'].errors[0]).toMatchObject({ type: 'missing_node_type' });
  });

  it('reports a malformed prompt and per-node validation errors', async () => {
    const malformed = await postJson(`${t.url}/prompt`, { prompt: { '1': { inputs: {} } } });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.type).toBe('invalid_prompt');
    const outOfRange = await postJson(`${t.url}/prompt`, { prompt: showInt(5000) });
    expect(outOfRange.status).toBe(400);
    expect(outOfRange.body.error.type).toBe('prompt_outputs_failed_validation');
    expect(outOfRange.body.node_errors['1'].errors[0]).toMatchObject({ type: 'value_bigger_than_max', extra_info: { input_name: 'value' } });
    const noOutputs = await postJson(`${t.url}/prompt`, { prompt: { '1': { class_type: 'TestInt', inputs: { value: 1 } } } });
    expect(noOutputs.body.error.type).toBe('prompt_no_outputs');
  });

  it('answers GET /prompt with the queue size', async () => {
    expect((await getJson(`${t.url}/prompt`)).body).toEqual({ exec_info: { queue_remaining: 0 } });
  });
});

describe('queue and history management', () => {
  it('shows running and pending prompts in ComfyUI tuple form, front first, and deletes/clears pending ones', async () => {
    t.nodes.closeGate();
    const gated = { '1': { class_type: 'TestInt', inputs: { value: 1 } }, '2': { class_type: 'TestGate', inputs: { value: ['1', 0] } }, '3': { class_type: 'TestShow', inputs: { value: ['2', 0] } } };
    const running = await postJson(`${t.url}/prompt`, { prompt: gated });
    const a = await postJson(`${t.url}/prompt`, { prompt: showInt(11) });
    const b = await postJson(`${t.url}/prompt`, { prompt: showInt(12) });
    const front = await postJson(`${t.url}/prompt`, { prompt: showInt(13), front: true });
    expect(front.body.number).toBeLessThan(0);
    while (!t.server.executor.running) await new Promise((r) => setTimeout(r, 5));
    const queue = await getJson(`${t.url}/api/queue`);
    expect(queue.body.queue_running.map((q: unknown[]) => q[1])).toEqual([running.body.prompt_id]);
    expect(queue.body.queue_pending.map((q: unknown[]) => q[1])).toEqual([front.body.prompt_id, a.body.prompt_id, b.body.prompt_id]);
    expect(queue.body.queue_running[0]).toHaveLength(5);

    expect((await postJson(`${t.url}/queue`, { delete: [a.body.prompt_id] })).status).toBe(200);
    expect((await getJson(`${t.url}/queue`)).body.queue_pending.map((q: unknown[]) => q[1])).toEqual([front.body.prompt_id, b.body.prompt_id]);
    await postJson(`${t.url}/api/queue`, { clear: true });
    expect((await getJson(`${t.url}/queue`)).body.queue_pending).toEqual([]);
    t.nodes.gate.release();
    await t.server.queue.idle();
    expect((await getJson(`${t.url}/queue`)).body).toEqual({ queue_running: [], queue_pending: [] });
    const history = (await getJson(`${t.url}/history`)).body;
    expect(history[running.body.prompt_id].status.status_str).toBe('success');
    expect(history[a.body.prompt_id]).toBeUndefined();
  });

  it('rejects malformed queue and history bodies without changing anything', async () => {
    const res = await postJson(`${t.url}/queue`, { delete: 'all' });
    expect(res.status).toBe(400);
    expect(res.body.error.details).toMatch(/delete/);
    expect((await postJson(`${t.url}/history`, '{nope')).status).toBe(400);
    expect((await postJson(`${t.url}/interrupt`, { prompt_id: 5 })).status).toBe(400);
  });

  it('limits history with max_items, deletes and clears entries', async () => {
    const ids: string[] = [];
    for (const v of [21, 22, 23]) ids.push((await postJson(`${t.url}/prompt`, { prompt: showInt(v) })).body.prompt_id);
    await t.server.queue.idle();
    const latest = await getJson(`${t.url}/history?max_items=2`);
    expect(Object.keys(latest.body)).toEqual(ids.slice(1));
    expect((await getJson(`${t.url}/history?max_items=abc`)).status).toBe(400);
    await postJson(`${t.url}/history`, { delete: [ids[2]] });
    expect((await getJson(`${t.url}/history/${ids[2]}`)).body).toEqual({});
    await postJson(`${t.url}/api/history`, { clear: true });
    expect((await getJson(`${t.url}/history`)).body).toEqual({});
  });

  it('interrupts the running prompt only when the prompt_id matches', async () => {
    t.nodes.closeGate();
    const gated = { '1': { class_type: 'TestInt', inputs: { value: 2 } }, '2': { class_type: 'TestGate', inputs: { value: ['1', 0] } }, '3': { class_type: 'TestShow', inputs: { value: ['2', 0] } } };
    const run = await postJson(`${t.url}/prompt`, { prompt: gated });
    while (!t.server.executor.running) await new Promise((r) => setTimeout(r, 5));
    expect((await postJson(`${t.url}/interrupt`, { prompt_id: 'someone-else' })).status).toBe(200);
    expect(t.server.queue.snapshot().queue_running[0]?.[1]).toBe(run.body.prompt_id);
    expect((await postJson(`${t.url}/api/interrupt`, {})).status).toBe(200);
    await t.server.queue.idle();
    const entry = (await getJson(`${t.url}/history/${run.body.prompt_id}`)).body[run.body.prompt_id];
    expect(entry.status).toMatchObject({ status_str: 'error', completed: false });
    expect(entry.status.messages.at(-1)[0]).toBe('execution_interrupted');
    t.nodes.gate.release();
  });
});

describe('routing errors', () => {
  it('404s unknown API routes and 405s wrong methods, as JSON', async () => {
    const missing = await getJson(`${t.url}/api/nothing-here`);
    expect(missing.status).toBe(404);
    expect(missing.body.error.type).toBe('not_found');
    const wrong = await getJson(`${t.url}/object_info`, { method: 'DELETE' });
    expect(wrong.status).toBe(405);
  });

  it('tells the user to build the editor when renderer/dist is missing', async () => {
    const res = await fetch(`${t.url}/`);
    expect(res.status).toBe(503);
    expect(await res.text()).toMatch(/npm run build:renderer/);
  });
});
