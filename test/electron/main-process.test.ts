import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { runShell, type ShellDeps } from '../../electron/main-process.js';
import { findMenuItem } from '../../electron/menu.js';
import { exposeBridge } from '../../electron/preload.js';
import { IPC } from '../../electron/types.js';
import { createCoreRegistry } from '../../nodes/core/index.js';
import { createRuntimeEnv } from '../../nodes/env.js';
import { startServer } from '../../runtime/server/index.js';
import { fakeElectron } from './fakes.js';

const URL_ = 'http://127.0.0.1:45678';

function deps(overrides: Partial<ShellDeps> = {}) {
  const files = new Map<string, string | Uint8Array>();
  const closed = { count: 0 };
  const d: ShellDeps = {
    preloadPath: '/app/electron/dist/preload.cjs',
    startRuntime: async () => ({ url: URL_, close: async () => void closed.count++ }),
    readFile: async (p) => {
      const f = files.get(p);
      if (f === undefined) throw new Error(`ENOENT ${p}`);
      return typeof f === 'string' ? new TextEncoder().encode(f) : f;
    },
    writeFile: async (p, text) => void files.set(p, text),
    platform: 'linux',
    log: () => {},
    ...overrides,
  };
  return { d, files, closed };
}

describe('Electron main process', () => {
  it('opens one locked-down window on the runtime server', async () => {
    const fake = fakeElectron();
    const { d } = deps();
    const shell = await runShell(fake.electron, d);
    expect(shell.primary).toBe(true);
    expect(fake.windows).toHaveLength(1);
    const win = fake.windows[0];
    expect(win.options.webPreferences).toEqual({
      contextIsolation: true,
      nodeIntegration: false,
      sandbox: true,
      webSecurity: true,
      preload: '/app/electron/dist/preload.cjs',
      spellcheck: false,
    });
    expect(win.loaded).toBe(`${URL_}/`);
    expect(win.shown).toBe(true);
  });

  it('starts the real runtime on a free loopback port and loads the editor from it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'resflow-electron-'));
    const fake = fakeElectron();
    let close: (() => Promise<void>) | undefined;
    try {
      const { d } = deps({
        async startRuntime() {
          const env = createRuntimeEnv({ dataDir: dir });
          const server = await startServer({ env, registry: createCoreRegistry(env), port: 0, log: () => {} });
          close = () => server.close();
          return { url: server.url, close: () => server.close() };
        },
      });
      const shell = await runShell(fake.electron, d);
      expect(shell.runtime!.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(shell.runtime!.url).not.toBe('http://127.0.0.1:8188');
      expect(fake.windows[0].loaded).toBe(`${shell.runtime!.url}/`);
      const stats = await fetch(`${shell.runtime!.url}/api/system_stats`);
      expect(stats.status).toBe(200);
      fake.emitApp('before-quit');
      await vi.waitFor(async () => expect(await fetch(`${shell.runtime!.url}/api/queue`).catch(() => 'down')).toBe('down'));
    } finally {
      await close?.().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('quits when another instance holds the lock, and focuses the window on a second launch', async () => {
    const second = fakeElectron({ lock: false });
    const shell = await runShell(second.electron, deps().d);
    expect(shell.primary).toBe(false);
    expect(second.calls.quit).toBe(1);
    expect(second.windows).toHaveLength(0);

    const first = fakeElectron();
    await runShell(first.electron, deps().d);
    const win = first.windows[0];
    win.minimized = true;
    first.emitApp('second-instance', {}, ['resflow']);
    expect(win.restored).toBe(1);
    expect(win.focused).toBe(1);
  });

  it('has Open, Save, Save As, Queue and Interrupt in the menu, each forwarded to the editor', async () => {
    const fake = fakeElectron();
    const shell = await runShell(fake.electron, deps().d);
    expect(fake.calls.menu).toBe(shell.menu);
    const expected: [string[], string, string][] = [
      [['File', 'Open…'], 'CmdOrCtrl+O', 'open'],
      [['File', 'Save'], 'CmdOrCtrl+S', 'save'],
      [['File', 'Save As…'], 'CmdOrCtrl+Shift+S', 'save-as'],
      [['Run', 'Queue Prompt'], 'CmdOrCtrl+Enter', 'queue'],
      [['Run', 'Interrupt'], 'CmdOrCtrl+Shift+X', 'interrupt'],
    ];
    for (const [path, accelerator, command] of expected) {
      const item = findMenuItem(shell.menu, path)!;
      expect(item.accelerator, path.join(' > ')).toBe(accelerator);
      item.click!();
      expect(fake.windows[0].sent.at(-1)).toEqual([IPC.menu, command]);
    }
    // Undo stays with the editor (an Electron undo role would do a text undo instead).
    expect(JSON.stringify(shell.menu)).not.toContain('"undo"');
  });

  it('opens a workflow through the dialog and returns its bytes; cancel returns null', async () => {
    const fake = fakeElectron();
    const { d, files } = deps();
    files.set('/docs/flow.json', '{"nodes":[]}');
    await runShell(fake.electron, d);
    fake.dialogs.open.push({ canceled: false, filePaths: ['/docs/flow.json'] });
    const opened = (await fake.invoke(IPC.openWorkflow, `${URL_}/`)) as { name: string; data: ArrayBuffer };
    expect(opened.name).toBe('flow.json');
    expect(new TextDecoder().decode(opened.data)).toBe('{"nodes":[]}');
    expect(await fake.invoke(IPC.openWorkflow, `${URL_}/`)).toBeNull();
  });

  it('saves: Save As asks for a path, Save then reuses it; bad arguments are refused', async () => {
    const fake = fakeElectron();
    const { d, files } = deps();
    await runShell(fake.electron, d);
    fake.dialogs.save.push({ canceled: false, filePath: '/docs/mine.json' });
    expect(await fake.invoke(IPC.saveWorkflow, `${URL_}/`, 'my flow', '{"a":1}', true)).toBe('/docs/mine.json');
    expect(fake.dialogs.saveOptions[0].defaultPath).toBe('/home/user/Documents/my flow.json');
    expect(files.get('/docs/mine.json')).toBe('{"a":1}');
    expect(await fake.invoke(IPC.saveWorkflow, `${URL_}/`, 'my flow', '{"a":2}', false)).toBe('/docs/mine.json');
    expect(fake.dialogs.saveOptions).toHaveLength(1);
    expect(files.get('/docs/mine.json')).toBe('{"a":2}');
    await expect(fake.invoke(IPC.saveWorkflow, `${URL_}/`, 'x', { not: 'text' }, false)).rejects.toThrow(/invalid save request/);
    fake.dialogs.save.push({ canceled: true });
    expect(await fake.invoke(IPC.saveWorkflow, `${URL_}/`, 'x', '{}', true)).toBeNull();
  });

  it('ignores IPC from any page but the editor', async () => {
    const fake = fakeElectron();
    const { d, files } = deps();
    await runShell(fake.electron, d);
    fake.dialogs.save.push({ canceled: false, filePath: '/etc/evil.json' });
    expect(await fake.invoke(IPC.saveWorkflow, 'https://evil.example/', 'x', '{}', true)).toBeNull();
    expect(await fake.invoke(IPC.saveWorkflow, `${URL_}.evil.example/`, 'x', '{}', true)).toBeNull();
    expect(await fake.invoke(IPC.openWorkflow, undefined)).toBeNull();
    expect(files.has('/etc/evil.json')).toBe(false);
    expect(fake.dialogs.saveOptions).toHaveLength(0);
  });

  it('keeps the window on the editor: other navigation is blocked, new windows go to the browser', async () => {
    const fake = fakeElectron();
    await runShell(fake.electron, deps().d);
    const win = fake.windows[0];
    expect(win.navigate(`${URL_}/`)).toBe(false);
    expect(win.navigate('https://example.com/')).toBe(true);
    expect(win.navigate('file:///etc/passwd')).toBe(true);
    expect(win.openHandler!({ url: 'https://github.com/resflow' })).toEqual({ action: 'deny' });
    expect(fake.calls.openExternal).toEqual(['https://github.com/resflow']);
    expect(win.openHandler!({ url: 'javascript:alert(1)' })).toEqual({ action: 'deny' });
    expect(fake.calls.openExternal).toHaveLength(1);
  });

  it('quits when the last window closes (except on macOS) and stops the server once on quit', async () => {
    const linux = fakeElectron();
    const { d, closed } = deps();
    await runShell(linux.electron, d);
    linux.emitApp('window-all-closed');
    expect(linux.calls.quit).toBe(1);
    linux.emitApp('before-quit');
    linux.emitApp('before-quit');
    await vi.waitFor(() => expect(closed.count).toBe(1));

    const mac = fakeElectron();
    await runShell(mac.electron, deps({ platform: 'darwin' }).d);
    mac.emitApp('window-all-closed');
    expect(mac.calls.quit).toBe(0);
    expect(findMenuItem(mac.calls.menu!, ['ResFlow'])).toBeDefined();
  });

  it('reports a runtime that fails to start and quits', async () => {
    const fake = fakeElectron();
    await runShell(fake.electron, deps({ startRuntime: async () => Promise.reject(new Error('port in use')) }).d);
    expect(fake.calls.errorBoxes).toEqual(['ResFlow could not start: port in use']);
    expect(fake.calls.quit).toBe(1);
    expect(fake.windows).toHaveLength(0);
  });
});

describe('preload bridge', () => {
  it('exposes only open, save and menu events, on the channels the main process handles', async () => {
    const exposed: Record<string, unknown> = {};
    const invoked: unknown[][] = [];
    const listeners = new Map<string, (e: unknown, ...a: unknown[]) => void>();
    exposeBridge(
      { exposeInMainWorld: (key, api) => void (exposed[key] = api) },
      { invoke: async (...args) => (invoked.push(args), null), on: (channel, l) => void listeners.set(channel, l) },
    );
    const api = exposed.resflowShell as { openWorkflow(): Promise<unknown>; saveWorkflow(n: unknown, t: unknown, s: unknown): Promise<unknown>; onMenu(l: (c: string) => void): void };
    expect(Object.keys(exposed)).toEqual(['resflowShell']);
    expect(Object.keys(api).sort()).toEqual(['onMenu', 'openWorkflow', 'saveWorkflow']);
    await api.openWorkflow();
    await api.saveWorkflow('a', 42, 1);
    expect(invoked).toEqual([[IPC.openWorkflow], [IPC.saveWorkflow, 'a', '42', true]]);
    const commands: string[] = [];
    api.onMenu((c) => commands.push(c));
    listeners.get(IPC.menu)!({}, 'queue');
    listeners.get(IPC.menu)!({}, 'rm -rf');
    expect(commands).toEqual(['queue']);
  });
});
