import { IPC, MENU_COMMANDS, type MenuCommand } from './types.js';

/** The renderer-side pieces of Electron the bridge needs (injected so tests can use fakes). */
export interface ContextBridgeLike {
  exposeInMainWorld(key: string, api: unknown): void;
}

export interface IpcRendererLike {
  invoke(channel: string, ...args: unknown[]): Promise<unknown>;
  on(channel: string, listener: (event: unknown, ...args: unknown[]) => void): void;
}

/** What the page sees as `window.resflowShell` (renderer/src/files.ts declares the same shape). */
export interface ShellBridgeApi {
  openWorkflow(): Promise<{ name: string; data: ArrayBuffer } | null>;
  saveWorkflow(suggestedName: string, text: string, saveAs: boolean): Promise<string | null>;
  onMenu(listener: (command: MenuCommand) => void): void;
}

/**
 * Exposes exactly three functions to the page: open and save dialogs, and menu commands. The page
 * never gets `ipcRenderer` itself, so it cannot reach any other channel of the main process.
 */
export function exposeBridge(contextBridge: ContextBridgeLike, ipcRenderer: IpcRendererLike): ShellBridgeApi {
  const api: ShellBridgeApi = {
    openWorkflow: () => ipcRenderer.invoke(IPC.openWorkflow) as Promise<{ name: string; data: ArrayBuffer } | null>,
    saveWorkflow: (suggestedName, text, saveAs) => ipcRenderer.invoke(IPC.saveWorkflow, String(suggestedName), String(text), Boolean(saveAs)) as Promise<string | null>,
    onMenu: (listener) => {
      if (typeof listener !== 'function') return;
      ipcRenderer.on(IPC.menu, (_event, command) => {
        if ((MENU_COMMANDS as readonly unknown[]).includes(command)) listener(command as MenuCommand);
      });
    },
  };
  contextBridge.exposeInMainWorld('resflowShell', api);
  return api;
}

// In a sandboxed Electron preload `require('electron')` is available; anywhere else (tests, tsc) not.
declare const require: ((id: string) => unknown) | undefined;
if (typeof require === 'function') {
  try {
    const electron = require('electron') as { contextBridge?: ContextBridgeLike; ipcRenderer?: IpcRendererLike };
    if (electron.contextBridge && electron.ipcRenderer) exposeBridge(electron.contextBridge, electron.ipcRenderer);
  } catch {
    // not running as an Electron preload
  }
}
