import { basename, join } from 'node:path';
import { z } from 'zod';
import { buildMenuTemplate } from './menu.js';
import { IPC, MENU_COMMANDS, type BrowserWindowLike, type ElectronLike, type IpcMainEventLike, type MenuCommand, type MenuItemLike } from './types.js';

export interface RuntimeHandle {
  /** The server's base URL, e.g. http://127.0.0.1:43117 */
  url: string;
  close(): Promise<void>;
}

export interface ShellDeps {
  /** Starts the ResFlow server on a free loopback port. */
  startRuntime(): Promise<RuntimeHandle>;
  preloadPath: string;
  readFile(path: string): Promise<Uint8Array>;
  writeFile(path: string, text: string): Promise<void>;
  platform?: NodeJS.Platform;
  log?: (message: string) => void;
}

export interface ShellHandle {
  window?: BrowserWindowLike;
  runtime?: RuntimeHandle;
  menu: MenuItemLike[];
  /** False when another instance already runs (this one quits). */
  primary: boolean;
}

const MAX_WORKFLOW_BYTES = 64 * 1024 * 1024;
const saveArgs = z.tuple([z.string().min(1).max(255), z.string().max(MAX_WORKFLOW_BYTES), z.boolean()]);

/** Only the editor page served by our own runtime may call into the main process. */
function fromEditor(event: IpcMainEventLike, runtime: RuntimeHandle): boolean {
  const url = event.senderFrame?.url;
  return typeof url === 'string' && (url === runtime.url || url.startsWith(`${runtime.url}/`));
}

function safeFileName(name: string): string {
  const base = basename(name).replace(/[\\/:*?"<>|\u0000-\u001f]/g, '_');
  return base.toLowerCase().endsWith('.json') ? base : `${base}.json`;
}

/**
 * The Electron main process: one instance, a loopback runtime server, one locked-down window on it,
 * a menu that forwards commands to the editor, and file dialogs the editor reaches through the
 * preload bridge. Everything Electron is injected, so this runs under unit tests with fakes.
 */
export async function runShell(electron: ElectronLike, deps: ShellDeps): Promise<ShellHandle> {
  const { app, BrowserWindow, Menu, dialog, ipcMain, shell } = electron;
  const platform = deps.platform ?? process.platform;
  const log = deps.log ?? ((m: string) => console.log(m));
  const handle: ShellHandle = { menu: [], primary: app.requestSingleInstanceLock() };
  if (!handle.primary) {
    app.quit();
    return handle;
  }

  let currentPath: string | undefined;
  const send = (command: MenuCommand) => {
    if (handle.window && !handle.window.isDestroyed()) handle.window.webContents.send(IPC.menu, command);
  };

  app.on('second-instance', () => {
    const win = handle.window;
    if (!win || win.isDestroyed()) return;
    if (win.isMinimized()) win.restore();
    win.focus();
  });
  app.on('window-all-closed', () => {
    if (platform !== 'darwin') app.quit();
  });
  let closing = false;
  app.on('before-quit', () => {
    if (closing) return;
    closing = true;
    void handle.runtime?.close().catch((e: unknown) => log(`resflow: stopping the server failed: ${String(e)}`));
  });

  await app.whenReady();
  try {
    handle.runtime = await deps.startRuntime();
  } catch (e) {
    dialog.showErrorBox('ResFlow could not start', e instanceof Error ? e.message : String(e));
    app.quit();
    return handle;
  }
  const runtime = handle.runtime;

  ipcMain.handle(IPC.openWorkflow, async (event) => {
    if (!fromEditor(event, runtime) || !handle.window) return null;
    const result = await dialog.showOpenDialog(handle.window, {
      title: 'Open workflow',
      properties: ['openFile'],
      filters: [{ name: 'Workflows and images', extensions: ['json', 'png'] }],
    });
    const path = result.filePaths[0];
    if (result.canceled || !path) return null;
    const bytes = await deps.readFile(path);
    if (bytes.byteLength > MAX_WORKFLOW_BYTES) throw new Error(`${basename(path)} is too large to be a workflow`);
    if (path.toLowerCase().endsWith('.json')) currentPath = path;
    // A copy that is exactly the file's bytes (a pooled Buffer's backing store is larger).
    const data = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    return { name: basename(path), data };
  });

  ipcMain.handle(IPC.saveWorkflow, async (event, ...args) => {
    if (!fromEditor(event, runtime) || !handle.window) return null;
    const parsed = saveArgs.safeParse(args);
    if (!parsed.success) throw new Error(`invalid save request: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
    const [suggestedName, text, saveAs] = parsed.data;
    let path = saveAs ? undefined : currentPath;
    if (!path) {
      const result = await dialog.showSaveDialog(handle.window, {
        title: 'Save workflow',
        defaultPath: currentPath ?? join(app.getPath('documents'), safeFileName(suggestedName)),
        filters: [{ name: 'Workflow', extensions: ['json'] }],
      });
      if (result.canceled || !result.filePath) return null;
      path = result.filePath;
    }
    await deps.writeFile(path, text);
    currentPath = path;
    return path;
  });

  handle.menu = buildMenuTemplate(send, platform);
  Menu.setApplicationMenu(Menu.buildFromTemplate(handle.menu));

  /** The editor window; macOS re-creates it from the dock (`activate`) after the last one was closed. */
  const openWindow = async (): Promise<BrowserWindowLike> => {
    const win = new BrowserWindow({
      width: 1440,
      height: 900,
      minWidth: 900,
      minHeight: 600,
      title: 'ResFlow',
      show: false,
      backgroundColor: '#16181d',
      webPreferences: { contextIsolation: true, nodeIntegration: false, sandbox: true, webSecurity: true, preload: deps.preloadPath, spellcheck: false },
    });
    handle.window = win;
    win.once('ready-to-show', () => win.show());
    win.on('closed', () => {
      handle.window = undefined;
    });
    // The window only ever shows our editor; links elsewhere open in the user's browser.
    win.webContents.on('will-navigate', (event, url) => {
      if (url !== runtime.url && !url.startsWith(`${runtime.url}/`)) event.preventDefault();
    });
    win.webContents.setWindowOpenHandler(({ url }) => {
      if (/^https?:\/\//.test(url) && !url.startsWith(runtime.url)) void shell.openExternal(url);
      return { action: 'deny' };
    });
    await win.loadURL(`${runtime.url}/`);
    return win;
  };
  app.on('activate', () => {
    if (closing || (handle.window && !handle.window.isDestroyed())) return;
    void openWindow().catch((e: unknown) => log(`resflow: reopening the window failed: ${String(e)}`));
  });
  await openWindow();
  return handle;
}

export { MENU_COMMANDS };
