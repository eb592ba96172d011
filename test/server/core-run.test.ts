import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureDemoModels } from '../../runtime/models/synthetic/demo.js';
import { ensureShapesModel } from '../../runtime/shapes/provision.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import { parseEditorWorkflow } from '../../runtime/workflow/editor-schema.js';
import { editorToApi } from '../../runtime/workflow/editor-to-api.js';
import { connectWs, getJson, postJson, startTestServer, type TestServer, type WsMessage } from './helpers.js';

/** The real core nodes on the embedded demo model, driven over HTTP and followed over the websocket. */
let t: TestServer;
let demo: ApiPrompt;
let socket: Awaited<ReturnType<typeof connectWs>>;
beforeAll(async () => {
  t = await startTestServer();
  ensureDemoModels(t.env.folders.modelsDir);
  ensureShapesModel(t.env.folders.modelsDir);
  const workflow = (await getJson(`${t.url}/api/workflows/default`)).body;
  demo = editorToApi(parseEditorWorkflow(workflow).data!, t.registry).prompt;
  for (const node of Object.values(demo)) {
    if (node.class_type === 'KSampler') node.inputs.steps = 3;
    if (node.class_type === 'EmptyLatentImage') Object.assign(node.inputs, { width: 256, height: 256 });
  }
});
afterEach(() => socket?.close());
afterAll(async () => {
  await t.close();
});

const done = (id: string) => (m: WsMessage) => m.type === 'executing' && m.data.node === null && m.data.prompt_id === id;
const ofPrompt = (id: string) => (m: WsMessage) => m.type !== 'binary' && m.type !== 'status' && m.data?.prompt_id === id;
const idsOf = (prompt: ApiPrompt, type: string) => Object.keys(prompt).filter((k) => prompt[k].class_type === type).sort();

describe('core nodes over the server', () => {
  it('runs the default ResAdapter workflow: every node executes, samplers stream progress and previews, images are saved', async () => {
    socket = await connectWs(t.url, 'core');
    const { status, body } = await postJson(`${t.url}/prompt`, { prompt: demo, client_id: 'core', extra_data: { extra_pnginfo: { workflow: { marker: 'editor-json' } } } });
    expect(status).toBe(200);
    await socket.waitFor(done(body.prompt_id), 120_000);
    const msgs = socket.messages.filter(ofPrompt(body.prompt_id));
    const executing = msgs.filter((m) => m.type === 'executing' && m.data.node !== null).map((m) => (m as { data: { node: string } }).data.node);
    expect(executing.sort()).toEqual(Object.keys(demo).sort());
    for (const sampler of idsOf(demo, 'KSampler')) {
      const steps = msgs.filter((m) => m.type === 'progress' && m.data.node === sampler).map((m) => (m as { data: { value: number } }).data.value);
      expect(steps).toEqual([1, 2, 3]);
    }
    expect(socket.messages.filter((m) => m.type === 'binary' && m.eventType === 1).length).toBeGreaterThanOrEqual(6);
    const saved = msgs.filter((m) => m.type === 'executed').map((m) => (m as { data: { node: string; output: { images: { filename: string; subfolder: string; type: string }[] } } }).data);
    expect(saved.map((s) => s.node).sort()).toEqual(idsOf(demo, 'SaveImage'));
    expect(msgs.at(-2)?.type).toBe('execution_success');

    const image = saved[0].output.images[0];
    const res = await fetch(`${t.url}/view?${new URLSearchParams({ filename: image.filename, subfolder: image.subfolder, type: image.type })}`);
    const png = Buffer.from(await res.arrayBuffer());
    expect(res.headers.get('content-type')).toBe('image/png');
    expect((await sharp(png).metadata()).format).toBe('png');
    // SaveImage embeds the prompt and the editor workflow, like ComfyUI.
    expect(png.includes(Buffer.from('editor-json'))).toBe(true);
  });

  it('re-runs from cache: nothing executes, the saved images are reported again', async () => {
    socket = await connectWs(t.url, 'core');
    const { body } = await postJson(`${t.url}/prompt`, { prompt: demo, client_id: 'core' });
    await socket.waitFor(done(body.prompt_id), 60_000);
    const msgs = socket.messages.filter(ofPrompt(body.prompt_id));
    expect(msgs.filter((m) => m.type === 'executing' && m.data.node !== null)).toEqual([]);
    expect(msgs.filter((m) => m.type === 'progress')).toEqual([]);
    const cached = msgs.find((m) => m.type === 'execution_cached') as { data: { nodes: string[] } };
    expect(cached.data.nodes.sort()).toEqual(Object.keys(demo).sort());
    expect(msgs.filter((m) => m.type === 'executed').length).toBe(idsOf(demo, 'SaveImage').length);
  });

  it('reports a runtime failure of a core node (a corrupt input image) as execution_error', async () => {
    writeFileSync(join(t.env.inputDir, 'corrupt.png'), 'this is not a png');
    socket = await connectWs(t.url, 'core');
    const prompt = {
      '1': { class_type: 'LoadImage', inputs: { image: 'corrupt.png' } },
      '2': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'never' } },
    };
    const { status, body } = await postJson(`${t.url}/prompt`, { prompt, client_id: 'core' });
    expect(status).toBe(200);
    await socket.waitFor(done(body.prompt_id));
    const error = socket.messages.find((m) => m.type === 'execution_error' && m.data.prompt_id === body.prompt_id) as { data: Record<string, unknown> };
    expect(error.data).toMatchObject({ node_id: '1', node_type: 'LoadImage', executed: [] });
    expect(String(error.data.exception_message).length).toBeGreaterThan(0);
  });

  it('interrupts a sampler mid-run and keeps the queue going', async () => {
    const long = structuredClone(demo);
    for (const id of idsOf(long, 'KSampler')) Object.assign(long[id].inputs, { steps: 200, seed: 7 });
    socket = await connectWs(t.url, 'core');
    const first = await postJson(`${t.url}/prompt`, { prompt: long, client_id: 'core' });
    const next = await postJson(`${t.url}/prompt`, { prompt: demo, client_id: 'core' });
    await socket.waitFor((m) => m.type === 'progress' && m.data.prompt_id === first.body.prompt_id, 60_000);
    await postJson(`${t.url}/interrupt`, {});
    await socket.waitFor(done(next.body.prompt_id), 60_000);
    const interrupted = socket.messages.find((m) => m.type === 'execution_interrupted') as { data: { node_type: string; prompt_id: string } };
    expect(interrupted.data).toMatchObject({ node_type: 'KSampler', prompt_id: first.body.prompt_id });
    const steps = socket.messages.filter((m) => m.type === 'progress' && m.data.prompt_id === first.body.prompt_id);
    expect(steps.length).toBeLessThan(200);
    expect(socket.messages.some((m) => m.type === 'execution_success' && m.data.prompt_id === next.body.prompt_id)).toBe(true);
  });
});
