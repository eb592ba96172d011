import type {
  BrowserWindowLike,
  BrowserWindowOptionsLike,
  ElectronLike,
  IpcMainEventLike,
  MenuItemLike,
  NavigationEventLike,
  OpenDialogResult,
  SaveDialogResult,
} from '../../electron/types.js';

type Listener = (...args: unknown[]) => void;

/** An in-memory Electron: records what the shell does and lets tests fire app and window events. */
export function fakeElectron(options: { lock?: boolean } = {}) {
  const appListeners = new Map<string, Listener[]>();
  const handlers = new Map<string, (event: IpcMainEventLike, ...args: unknown[]) => unknown>();
  const windows: FakeWindow[] = [];
  const calls = { quit: 0, openExternal: [] as string[], errorBoxes: [] as string[], menu: undefined as MenuItemLike[] | undefined };
  const dialogs = {
    open: [] as OpenDialogResult[],
    save: [] as SaveDialogResult[],
    openOptions: [] as unknown[],
    saveOptions: [] as { defaultPath?: string }[],
  };

  class FakeWindow implements BrowserWindowLike {
    readonly options: BrowserWindowOptionsLike;
    loaded?: string;
    shown = false;
    focused = 0;
    restored = 0;
    minimized = false;
    destroyed = false;
    sent: [string, ...unknown[]][] = [];
    openHandler?: (details: { url: string }) => { action: 'deny' | 'allow' };
    private readonly listeners = new Map<string, Listener[]>();
    readonly webContents = {
      send: (channel: string, ...args: unknown[]) => void this.sent.push([channel, ...args]),
      setWindowOpenHandler: (h: (details: { url: string }) => { action: 'deny' | 'allow' }) => void (this.openHandler = h),
      on: (event: string, listener: (e: NavigationEventLike, url: string) => void) => this.add(`wc:${event}`, listener as Listener),
    };

    constructor(options: BrowserWindowOptionsLike) {
      this.options = options;
      windows.push(this);
    }

    private add(event: string, listener: Listener): void {
      this.listeners.set(event, [...(this.listeners.get(event) ?? []), listener]);
    }

    emit(event: string, ...args: unknown[]): void {
      for (const l of this.listeners.get(event) ?? []) l(...args);
    }

    /** Fires will-navigate and says whether the shell blocked it. */
    navigate(url: string): boolean {
      let prevented = false;
      this.emit('wc:will-navigate', { preventDefault: () => (prevented = true) }, url);
      return prevented;
    }

    async loadURL(url: string) {
      this.loaded = url;
      this.emit('ready-to-show');
    }
    on(event: string, listener: () => void) {
      this.add(event, listener);
    }
    once(event: string, listener: () => void) {
      this.add(event, listener);
    }
    show() {
      this.shown = true;
    }
    focus() {
      this.focused++;
    }
    restore() {
      this.restored++;
      this.minimized = false;
    }
    isMinimized() {
      return this.minimized;
    }
    isDestroyed() {
      return this.destroyed;
    }
    setTitle() {}
  }

  const electron: ElectronLike = {
    app: {
      requestSingleInstanceLock: () => options.lock ?? true,
      whenReady: async () => undefined,
      on: (event, listener) => void appListeners.set(event, [...(appListeners.get(event) ?? []), listener]),
      quit: () => void calls.quit++,
      getPath: (name) => (name === 'documents' ? '/home/user/Documents' : '/home/user/.config/ResFlow'),
      getAppPath: () => '/app',
      isPackaged: false,
    },
    BrowserWindow: FakeWindow,
    Menu: {
      buildFromTemplate: (template) => template,
      setApplicationMenu: (menu) => void (calls.menu = menu as MenuItemLike[]),
    },
    dialog: {
      showOpenDialog: async (_w, opts) => (dialogs.openOptions.push(opts), dialogs.open.shift() ?? { canceled: true, filePaths: [] }),
      showSaveDialog: async (_w, opts) => (dialogs.saveOptions.push(opts), dialogs.save.shift() ?? { canceled: true }),
      showErrorBox: (title, content) => void calls.errorBoxes.push(`${title}: ${content}`),
    },
    ipcMain: { handle: (channel, handler) => void handlers.set(channel, handler) },
    shell: { openExternal: async (url) => void calls.openExternal.push(url) },
  };

  return {
    electron,
    windows,
    calls,
    dialogs,
    emitApp(event: string, ...args: unknown[]) {
      for (const l of appListeners.get(event) ?? []) l(...args);
    },
    /** Calls an IPC handler as the given page would. */
    invoke(channel: string, senderUrl: string | undefined, ...args: unknown[]) {
      const handler = handlers.get(channel);
      if (!handler) throw new Error(`no handler for ${channel}`);
      return handler({ senderFrame: senderUrl === undefined ? null : { url: senderUrl } }, ...args);
    },
    handlers,
  };
}
