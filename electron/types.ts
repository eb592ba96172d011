/**
 * The slice of Electron's main-process API the shell uses. The shell is written against this
 * interface so it can be unit-tested with fakes; at runtime the real `electron` module satisfies it.
 */

export interface WebPreferencesLike {
  contextIsolation: boolean;
  nodeIntegration: boolean;
  sandbox: boolean;
  webSecurity: boolean;
  preload: string;
  spellcheck?: boolean;
}

export interface BrowserWindowOptionsLike {
  width: number;
  height: number;
  minWidth?: number;
  minHeight?: number;
  title?: string;
  show?: boolean;
  backgroundColor?: string;
  webPreferences: WebPreferencesLike;
}

export interface NavigationEventLike {
  preventDefault(): void;
}

export interface WebContentsLike {
  send(channel: string, ...args: unknown[]): void;
  setWindowOpenHandler(handler: (details: { url: string }) => { action: 'deny' | 'allow' }): void;
  on(event: 'will-navigate', listener: (event: NavigationEventLike, url: string) => void): void;
}

export interface BrowserWindowLike {
  readonly webContents: WebContentsLike;
  loadURL(url: string): Promise<void>;
  on(event: 'closed' | 'ready-to-show', listener: () => void): void;
  once(event: 'ready-to-show', listener: () => void): void;
  show(): void;
  focus(): void;
  restore(): void;
  isMinimized(): boolean;
  isDestroyed(): boolean;
  setTitle(title: string): void;
}

export interface BrowserWindowConstructorLike {
  new (options: BrowserWindowOptionsLike): BrowserWindowLike;
}

export interface AppLike {
  requestSingleInstanceLock(): boolean;
  whenReady(): Promise<unknown>;
  on(event: 'second-instance' | 'window-all-closed' | 'before-quit' | 'activate', listener: (...args: unknown[]) => void): void;
  quit(): void;
  getPath(name: 'userData' | 'documents'): string;
  getAppPath(): string;
  readonly isPackaged: boolean;
}

export interface MenuItemLike {
  label?: string;
  role?: string;
  type?: 'separator' | 'normal' | 'submenu';
  accelerator?: string;
  click?: () => void;
  submenu?: MenuItemLike[];
}

export interface MenuLike {
  buildFromTemplate(template: MenuItemLike[]): unknown;
  setApplicationMenu(menu: unknown): void;
}

export interface OpenDialogResult {
  canceled: boolean;
  filePaths: string[];
}

export interface SaveDialogResult {
  canceled: boolean;
  filePath?: string;
}

export interface DialogLike {
  showOpenDialog(window: BrowserWindowLike, options: { title?: string; properties: string[]; filters: { name: string; extensions: string[] }[] }): Promise<OpenDialogResult>;
  showSaveDialog(window: BrowserWindowLike, options: { title?: string; defaultPath?: string; filters: { name: string; extensions: string[] }[] }): Promise<SaveDialogResult>;
  showErrorBox(title: string, content: string): void;
}

export interface IpcMainEventLike {
  senderFrame?: { url: string } | null;
}

export interface IpcMainLike {
  handle(channel: string, handler: (event: IpcMainEventLike, ...args: unknown[]) => unknown): void;
}

export interface ShellLike {
  openExternal(url: string): Promise<void>;
}

export interface ElectronLike {
  app: AppLike;
  BrowserWindow: BrowserWindowConstructorLike;
  Menu: MenuLike;
  dialog: DialogLike;
  ipcMain: IpcMainLike;
  shell: ShellLike;
}

/** Channels between the preload bridge and the main process. */
export const IPC = {
  openWorkflow: 'resflow:open-workflow',
  saveWorkflow: 'resflow:save-workflow',
  menu: 'resflow:menu',
} as const;

export const MENU_COMMANDS = ['open', 'save', 'save-as', 'queue', 'interrupt'] as const;
export type MenuCommand = (typeof MENU_COMMANDS)[number];
