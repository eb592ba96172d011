import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { appPaths, dataDir, start } from '../../electron/main.js';
import { runShell } from '../../electron/main-process.js';
import { REPO } from '../nodes/helpers.js';
import { fakeElectron } from './fakes.js';

describe('Electron entry (electron/main.ts)', () => {
  it('finds the editor, workflows and preload relative to the bundle in electron/dist', () => {
    const p = appPaths(join(REPO, 'electron', 'dist'));
    expect(p.appRoot).toBe(REPO);
    expect(p.staticDir).toBe(join(REPO, 'renderer', 'dist'));
    expect(p.workflowsDir).toBe(join(REPO, 'workflows'));
    expect(existsSync(join(p.workflowsDir, 'resadapter-txt2img-512.json'))).toBe(true);
    expect(p.preloadPath).toBe(join(REPO, 'electron', 'dist', 'preload.cjs'));
  });

  it('keeps data in RESFLOW_DATA_DIR when set, else in Electron userData', () => {
    const fake = fakeElectron();
    expect(dataDir(fake.electron, { RESFLOW_DATA_DIR: '/data/rf' })).toBe('/data/rf');
    expect(dataDir(fake.electron, {})).toBe('/home/user/.config/ResFlow');
  });

  it('starts the real server on loopback with the demo model, serves the bundled workflows, and stops it on quit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'resflow-entry-'));
    const fake = fakeElectron();
    const shell = await start(fake.electron, join(REPO, 'electron', 'dist'), { RESFLOW_DATA_DIR: dir });
    const url = shell.runtime!.url;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(fake.windows[0]!.loaded).toBe(`${url}/`);
    expect(existsSync(join(dir, 'models', 'checkpoints', 'resflow-demo-sd15.safetensors'))).toBe(true);
    const list = (await (await fetch(`${url}/api/workflows`)).json()) as unknown;
    expect(JSON.stringify(list)).toMatch(/resadapter-txt2img-512/);
    fake.emitApp('before-quit');
    fake.emitApp('before-quit');
    await expect.poll(async () => fetch(`${url}/system_stats`).then(() => 'up', () => 'down'), { timeout: 10_000 }).toBe('down');
  });

  it('macOS: closing the last window keeps the app; activate opens a new window on the same server', async () => {
    const fake = fakeElectron();
    let closed = 0;
    const shell = await runShell(fake.electron, {
      preloadPath: '/p.cjs',
      startRuntime: async () => ({ url: 'http://127.0.0.1:4000', close: async () => void closed++ }),
      readFile: async () => new Uint8Array(),
      writeFile: async () => {},
      platform: 'darwin',
      log: () => {},
    });
    fake.emitApp('activate');
    expect(fake.windows).toHaveLength(1);
    fake.windows[0]!.destroyed = true;
    fake.windows[0]!.emit('closed');
    fake.emitApp('window-all-closed');
    expect(fake.calls.quit).toBe(0);
    expect(shell.window).toBeUndefined();
    fake.emitApp('activate');
    await expect.poll(() => fake.windows[1]?.loaded).toBe('http://127.0.0.1:4000/');
    expect(shell.window).toBe(fake.windows[1]);
    expect(fake.windows[1]!.options.webPreferences.sandbox).toBe(true);
    fake.emitApp('before-quit');
    fake.emitApp('activate');
    expect(fake.windows).toHaveLength(2);
    await expect.poll(() => closed).toBe(1);
  });
});

describe('npm run app (scripts/app.mjs)', () => {
  it('without Electron prints how to install it and exits 1', () => {
    const root = mkdtempSync(join(tmpdir(), 'resflow-app-'));
    mkdirSync(join(root, 'scripts'));
    copyFileSync(join(REPO, 'scripts', 'app.mjs'), join(root, 'scripts', 'app.mjs'));
    writeFileSync(join(root, 'package.json'), '{"name":"x","type":"module"}');
    const r = spawnSync(process.execPath, [join(root, 'scripts', 'app.mjs')], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/Electron is not installed/);
    expect(r.stderr).toMatch(/npm install --include=optional electron/);
    expect(r.stderr).toMatch(/npm start/);
  });

  it('finds Electron only when its binary was downloaded (path.txt), never a half-installed package', async () => {
    // A computed specifier: scripts/ is plain JavaScript without type declarations.
    const script = join(REPO, 'scripts', 'app.mjs');
    const { findElectron } = (await import(script)) as { findElectron: (req: NodeJS.Require) => string | undefined };
    const root = mkdtempSync(join(tmpdir(), 'resflow-electron-pkg-'));
    writeFileSync(join(root, 'package.json'), '{"name":"x"}');
    const req = createRequire(join(root, 'package.json'));
    expect(findElectron(req)).toBeUndefined();
    const pkg = join(root, 'node_modules', 'electron');
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, 'package.json'), '{"name":"electron","main":"index.js"}');
    const binary = join(pkg, 'dist-electron');
    writeFileSync(binary, '');
    writeFileSync(join(pkg, 'index.js'), `module.exports = ${JSON.stringify(binary)};`);
    expect(findElectron(createRequire(join(root, 'package.json')))).toBeUndefined();
    writeFileSync(join(pkg, 'path.txt'), 'dist-electron');
    expect(findElectron(createRequire(join(root, 'package.json')))).toBe(binary);
  });
});
