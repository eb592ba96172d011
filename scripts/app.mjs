#!/usr/bin/env node
// `npm run app`: builds the editor and the Electron shell, then starts Electron on it. Electron is an
// optional dependency: offline (or where its binary download failed) npm leaves it out, and this says
// how to get it instead of failing with `electron: not found`.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export const INSTALL_HELP = `Electron is not installed, so the desktop app cannot start.
It is an optional dependency whose binary is downloaded while installing; that download needs network
access to GitHub (or ELECTRON_MIRROR). To install it:
  npm install --include=optional electron        # or: npm ci, on a machine that is online
  node node_modules/electron/install.js          # retries only the binary download
Without Electron, the same editor runs in the browser: npm start`;

/** The Electron executable, or undefined when the package or its binary is missing. */
export function findElectron(require = createRequire(join(root, 'package.json'))) {
  let pkgDir;
  try {
    pkgDir = dirname(require.resolve('electron/package.json'));
  } catch {
    return undefined;
  }
  // electron/index.js throws when path.txt (written after the binary download) is missing.
  if (!existsSync(join(pkgDir, 'path.txt'))) return undefined;
  try {
    const binary = require('electron');
    return typeof binary === 'string' && existsSync(binary) ? binary : undefined;
  } catch {
    return undefined;
  }
}

function run() {
  const electron = findElectron();
  if (!electron) {
    console.error(INSTALL_HELP);
    return 1;
  }
  for (const script of ['build-renderer.mjs', 'build-electron.mjs']) {
    const r = spawnSync(process.execPath, [join(root, 'scripts', script)], { stdio: 'inherit' });
    if (r.status !== 0) return r.status ?? 1;
  }
  const child = spawn(electron, [join(root, 'electron', 'dist', 'main.mjs'), ...process.argv.slice(2)], { stdio: 'inherit' });
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
  return undefined;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const code = run();
  if (code !== undefined) process.exitCode = code;
}
