import type { MenuCommand, MenuItemLike } from './types.js';

/**
 * The application menu. File and Run items forward a command to the editor, which owns the
 * document; there is deliberately no Edit > Undo role, because Electron's role would run the page's
 * native text undo instead of the editor's graph undo (the editor binds Ctrl/Cmd+Z itself).
 */
export function buildMenuTemplate(send: (command: MenuCommand) => void, platform: NodeJS.Platform = process.platform): MenuItemLike[] {
  const mac = platform === 'darwin';
  const template: MenuItemLike[] = [
    {
      label: 'File',
      submenu: [
        { label: 'Open…', accelerator: 'CmdOrCtrl+O', click: () => send('open') },
        { label: 'Save', accelerator: 'CmdOrCtrl+S', click: () => send('save') },
        { label: 'Save As…', accelerator: 'CmdOrCtrl+Shift+S', click: () => send('save-as') },
        { type: 'separator' },
        mac ? { role: 'close' } : { role: 'quit' },
      ],
    },
    {
      label: 'Edit',
      submenu: [{ role: 'cut' }, { role: 'copy' }, { role: 'paste' }],
    },
    {
      label: 'Run',
      submenu: [
        { label: 'Queue Prompt', accelerator: 'CmdOrCtrl+Enter', click: () => send('queue') },
        { label: 'Interrupt', accelerator: 'CmdOrCtrl+Shift+X', click: () => send('interrupt') },
      ],
    },
    {
      label: 'View',
      submenu: [{ role: 'reload' }, { role: 'toggleDevTools' }, { type: 'separator' }, { role: 'resetZoom' }, { role: 'zoomIn' }, { role: 'zoomOut' }, { type: 'separator' }, { role: 'togglefullscreen' }],
    },
  ];
  if (mac) template.unshift({ label: 'ResFlow', submenu: [{ role: 'about' }, { type: 'separator' }, { role: 'hide' }, { role: 'quit' }] });
  return template;
}

/** Finds a menu item by its label path, e.g. `['Run', 'Interrupt']` (used by tests and the shell). */
export function findMenuItem(template: MenuItemLike[], path: string[]): MenuItemLike | undefined {
  let items: MenuItemLike[] | undefined = template;
  let found: MenuItemLike | undefined;
  for (const label of path) {
    found = items?.find((i) => i.label === label);
    items = found?.submenu;
  }
  return found;
}
