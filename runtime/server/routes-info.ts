import { readFileSync } from 'node:fs';
import { freemem, platform, release, totalmem } from 'node:os';
import type { RuntimeEnv } from '../nodes-api/env.js';
import type { NodeRegistry } from '../nodes-api/registry.js';
import { MODEL_FOLDERS, type ModelFolder } from '../config/model-folders.js';
import { HttpError, sendJson } from './http.js';
import type { Router } from './router.js';
import type { WorkflowLibrary } from './workflows.js';

export interface InfoRouteDeps {
  env: RuntimeEnv;
  registry: NodeRegistry;
  workflows: WorkflowLibrary;
  features: Record<string, unknown>;
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export const RESFLOW_VERSION = packageVersion();

export function addInfoRoutes(router: Router, { env, registry, workflows, features }: InfoRouteDeps): void {
  router.get('/object_info', async ({ res }) => sendJson(res, 200, await registry.objectInfo()));

  // ComfyUI answers an unknown class with `{}`, and clients such as the SDK rely on that.
  router.get('/object_info/{name}', async ({ res, params }) => {
    const def = registry.get(params.name);
    sendJson(res, 200, def ? { [params.name]: await registry.nodeInfo(def.name) } : {});
  });

  router.get('/system_stats', ({ res }) =>
    sendJson(res, 200, {
      system: {
        os: platform(),
        os_release: release(),
        ram_total: totalmem(),
        ram_free: freemem(),
        comfyui_version: RESFLOW_VERSION,
        resflow_version: RESFLOW_VERSION,
        python_version: `node ${process.version}`,
        pytorch_version: 'onnxruntime-node',
        embedded_python: false,
        argv: process.argv.slice(1),
      },
      // Inference runs on onnxruntime's CPU provider.
      devices: [{ name: 'cpu', type: 'cpu', index: 0, vram_total: 0, vram_free: 0, torch_vram_total: 0, torch_vram_free: 0 }],
    }),
  );

  router.get('/features', ({ res }) => sendJson(res, 200, features));

  router.get('/models', ({ res }) => sendJson(res, 200, Object.keys(MODEL_FOLDERS)));

  router.get('/models/{folder}', ({ res, params }) => {
    if (!Object.hasOwn(MODEL_FOLDERS, params.folder)) {
      throw new HttpError(404, 'unknown_model_folder', `Unknown model folder "${params.folder}"`, `known folders: ${Object.keys(MODEL_FOLDERS).join(', ')}`);
    }
    sendJson(res, 200, env.folders.list(params.folder as ModelFolder));
  });

  // ComfyUI lists embedding names as a prompt writes them: without the extension.
  router.get('/embeddings', ({ res }) => sendJson(res, 200, env.folders.list('embeddings').map((n) => n.replace(/\.(safetensors|pt|bin)$/i, ''))));
  // The editor ships its own code; there are no frontend extension scripts to load.
  router.get('/extensions', ({ res }) => sendJson(res, 200, []));

  router.get('/workflows', async ({ res }) => sendJson(res, 200, await workflows.list()));
  router.get('/workflows/default', async ({ res }) => sendJson(res, 200, await workflows.defaultWorkflow()));
  router.get('/workflows/{name}', async ({ res, params }) => sendJson(res, 200, await workflows.load(params.name)));
}
