import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCoreRegistry } from '../nodes/core/index.js';
import { createRuntimeEnv } from '../nodes/env.js';
import { ensureDemoModels } from '../runtime/models/synthetic/demo.js';
import { startServer } from '../runtime/server/server.js';
import { runShell } from './main-process.js';
import type { ElectronLike } from './types.js';

/**
 * Electron entry point (bundled to electron/dist/main.mjs by scripts/build-electron.mjs and started
 * with `npm run app`). Data (models, inputs, outputs) lives in Electron's per-user data folder unless
 * RESFLOW_DATA_DIR says otherwise.
 */
const here = dirname(fileURLToPath(import.meta.url));
// electron/dist/main.mjs → the app root holds renderer/dist and workflows/ (also inside a packaged asar).
const appRoot = join(here, '..', '..');

async function main(): Promise<void> {
  // A computed specifier keeps type-checking and bundling independent of an installed Electron.
  const specifier = 'electron';
  let loaded: { default?: ElectronLike } & ElectronLike;
  try {
    loaded = (await import(specifier)) as typeof loaded;
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') {
      throw new Error('Electron is not installed here. Install it with `npm install --save-dev electron`, or use `npm start` for the browser editor.');
    }
    throw e;
  }
  const electron = loaded.default ?? loaded;
  await runShell(electron, {
    preloadPath: join(here, 'preload.cjs'),
    readFile: (path) => readFile(path),
    writeFile: (path, text) => writeFile(path, text, 'utf8'),
    async startRuntime() {
      const env = createRuntimeEnv({ dataDir: process.env.RESFLOW_DATA_DIR ?? electron.app.getPath('userData') });
      ensureDemoModels(env.folders.modelsDir);
      const server = await startServer({
        env,
        registry: createCoreRegistry(env),
        host: '127.0.0.1',
        port: 0,
        staticDir: join(appRoot, 'renderer', 'dist'),
        workflowsDir: join(appRoot, 'workflows'),
      });
      return { url: server.url, close: () => server.close() };
    },
  });
}

main().catch((e: unknown) => {
  console.error('resflow: the Electron shell failed to start:', e);
  process.exit(1);
});
