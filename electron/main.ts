import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCoreRegistry } from '../nodes/core/index.js';
import { createRuntimeEnv } from '../nodes/env.js';
import { ensureDemoModels } from '../runtime/models/synthetic/demo.js';
import { startServer } from '../runtime/server/server.js';
import { runShell, type ShellDeps, type ShellHandle } from './main-process.js';
import type { ElectronLike } from './types.js';

/**
 * Electron entry point (bundled to electron/dist/main.mjs by scripts/build-electron.mjs and started
 * with `npm run app`). Data (models, inputs, outputs) lives in Electron's per-user data folder unless
 * RESFLOW_DATA_DIR says otherwise. Everything but the final `start` call takes Electron as a parameter,
 * so tests drive it with a fake.
 */

export interface AppPaths {
  /** The folder holding renderer/dist and workflows/ (also inside a packaged asar). */
  appRoot: string;
  staticDir: string;
  workflowsDir: string;
  preloadPath: string;
}

/** `bundleDir` is where main.mjs lives: electron/dist, two levels below the app root. */
export function appPaths(bundleDir: string): AppPaths {
  const appRoot = join(bundleDir, '..', '..');
  return {
    appRoot,
    staticDir: join(appRoot, 'renderer', 'dist'),
    workflowsDir: join(appRoot, 'workflows'),
    preloadPath: join(bundleDir, 'preload.cjs'),
  };
}

/** The data folder: RESFLOW_DATA_DIR when set, else Electron's per-user folder. */
export function dataDir(electron: ElectronLike, environment: NodeJS.ProcessEnv = process.env): string {
  return environment.RESFLOW_DATA_DIR || electron.app.getPath('userData');
}

/** What `runShell` needs, wired to the real server and file system. */
export function shellDeps(electron: ElectronLike, paths: AppPaths, environment: NodeJS.ProcessEnv = process.env): ShellDeps {
  return {
    preloadPath: paths.preloadPath,
    readFile: (path) => readFile(path),
    writeFile: (path, text) => writeFile(path, text, 'utf8'),
    async startRuntime() {
      const env = createRuntimeEnv({ dataDir: dataDir(electron, environment) });
      ensureDemoModels(env.folders.modelsDir);
      const server = await startServer({
        env,
        registry: createCoreRegistry(env),
        host: '127.0.0.1',
        port: 0,
        staticDir: paths.staticDir,
        workflowsDir: paths.workflowsDir,
      });
      return { url: server.url, close: () => server.close() };
    },
  };
}

export async function start(electron: ElectronLike, bundleDir: string, environment: NodeJS.ProcessEnv = process.env): Promise<ShellHandle> {
  return runShell(electron, shellDeps(electron, appPaths(bundleDir), environment));
}

async function loadElectron(): Promise<ElectronLike> {
  // A computed specifier keeps type-checking and bundling independent of an installed Electron.
  const specifier = 'electron';
  const loaded = (await import(specifier)) as { default?: ElectronLike } & ElectronLike;
  return loaded.default ?? loaded;
}

// Only inside Electron's main process: importing this module elsewhere (tests) has no side effects.
if (process.versions.electron && (process as { type?: string }).type === 'browser') {
  loadElectron()
    .then((electron) => start(electron, dirname(fileURLToPath(import.meta.url))))
    .catch((e: unknown) => {
      console.error('resflow: the Electron shell failed to start:', e);
      process.exit(1);
    });
}
