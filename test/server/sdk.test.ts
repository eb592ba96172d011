import { CallWrapper, ComfyApi, PromptBuilder } from '@saintno/comfyui-sdk';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDemoModels } from '../../runtime/models/synthetic/demo.js';
import { ensureShapesModel } from '../../runtime/shapes/provision.js';
import { parseEditorWorkflow } from '../../runtime/workflow/editor-schema.js';
import { editorToApi } from '../../runtime/workflow/editor-to-api.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import { getJson, pngBytes, startTestServer, type TestServer } from './helpers.js';

/**
 * A third-party ComfyUI client driving our server: if the SDK can queue, follow and collect a run,
 * so can the tools built on it.
 */
type SdkWorkflow = ConstructorParameters<typeof PromptBuilder>[0];

let t: TestServer;
let api: ComfyApi;
let demo: ApiPrompt;
beforeAll(async () => {
  t = await startTestServer();
  ensureDemoModels(t.env.folders.modelsDir);
  ensureShapesModel(t.env.folders.modelsDir);
  const workflow = (await getJson(`${t.url}/api/workflows/default`)).body;
  demo = editorToApi(parseEditorWorkflow(workflow).data!, t.registry).prompt;
  api = new ComfyApi(t.url, 'sdk-client');
  await api.init(5, 200).waitForReady();
});
afterAll(async () => {
  api?.destroy();
  await t.close();
});

function nodeOf(prompt: ApiPrompt, classType: string, title?: RegExp): string {
  const id = Object.keys(prompt).find((k) => prompt[k].class_type === classType && (!title || title.test(String(prompt[k].inputs.filename_prefix ?? ''))));
  if (!id) throw new Error(`no ${classType} in the demo workflow`);
  return id;
}

describe('@saintno/comfyui-sdk against ResFlow', () => {
  it('reads system stats, node definitions and the queue', async () => {
    expect((await api.getSystemStats()).devices[0].type).toBe('cpu');
    const defs = await api.getNodeDefs('KSampler');
    expect(defs?.KSampler.input.required).toHaveProperty('seed');
    expect(await api.getQueue()).toEqual({ queue_running: [], queue_pending: [] });
    expect(await api.getCheckpoints()).toContain('resflow-demo-sd15.safetensors');
  });

  it('queues the default (Shapes) ResAdapter workflow and receives its images, progress and previews', async () => {
    const latent = nodeOf(demo, 'EmptyLatentImage');
    const samplers = Object.keys(demo).filter((k) => demo[k].class_type === 'KSampler');
    const grid = nodeOf(demo, 'SaveImage', /grid/);
    const builder = new PromptBuilder(demo as unknown as SdkWorkflow, ['width', 'height', 'steps', 'steps2'], ['grid'])
      .setInputNode('width', `${latent}.inputs.width`)
      .setInputNode('height', `${latent}.inputs.height`)
      .setInputNode('steps', `${samplers[0]}.inputs.steps`)
      .setInputNode('steps2', `${samplers[1]}.inputs.steps`)
      .setOutputNode('grid', grid)
      .input('width', 256)
      .input('height', 256)
      .input('steps', 3)
      .input('steps2', 3);

    const progress: number[] = [];
    let previews = 0;
    const result = await new Promise<{ images: { filename: string; subfolder: string; type: string }[] }>((resolve, reject) => {
      new CallWrapper(api, builder)
        .onProgress((p) => progress.push(p.value))
        .onPreview(() => previews++)
        .onFinished((data) => resolve((data as unknown as { grid: { images: { filename: string; subfolder: string; type: string }[] } }).grid))
        .onFailed((e) => reject(e))
        .run();
    });
    expect(result.images).toHaveLength(1);
    expect(result.images[0]).toMatchObject({ type: 'output', subfolder: expect.stringMatching(/^shapes-/) });
    expect(progress.length).toBeGreaterThanOrEqual(3);
    expect(previews).toBeGreaterThan(0);
    const res = await fetch(api.getPathImage(result.images[0]));
    expect(res.status).toBe(200);
    const meta = await sharp(Buffer.from(await res.arrayBuffer())).metadata();
    expect(meta).toMatchObject({ format: 'png', width: 256 * 2 + 8, height: 256 });
  });

  it('reports a validation failure through onFailed', async () => {
    const broken = structuredClone(demo);
    broken[nodeOf(broken, 'CheckpointLoaderSimple')].inputs.ckpt_name = 'missing.safetensors';
    const builder = new PromptBuilder(broken as unknown as SdkWorkflow, [], ['grid']).setOutputNode('grid', nodeOf(broken, 'SaveImage', /grid/));
    const error = await new Promise<Error>((resolve) => {
      new CallWrapper(api, builder)
        .onFinished(() => resolve(new Error('unexpected success')))
        .onFailed((e) => resolve(e))
        .run();
    });
    expect(error.message).not.toBe('unexpected success');
  });

  it('uploads an image through the SDK', async () => {
    const png = await pngBytes(6, 6);
    const uploaded = await api.uploadImage(new Blob([new Uint8Array(png)], { type: 'image/png' }), 'sdk-upload.png');
    expect(uploaded).toMatchObject({ info: { filename: 'sdk-upload.png', type: 'input' } });
  });
});
