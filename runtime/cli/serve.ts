import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { main as serverMain } from '../server/main.js';

const REPO = resolve(new URL('../..', import.meta.url).pathname);

/**
 * `resflow serve`: the server and editor (the same as `npm start`). A checkout without a built editor
 * gets it built first, so the URL it prints never serves a blank page.
 */
export async function serveCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) return serverMain(['--help']);
  const dist = join(REPO, 'renderer', 'dist', 'app.js');
  if (!existsSync(dist) && existsSync(join(REPO, 'scripts', 'build-renderer.mjs'))) {
    console.error('building the editor (renderer/dist)…');
    const r = spawnSync(process.execPath, [join(REPO, 'scripts', 'build-renderer.mjs')], { stdio: ['ignore', 'ignore', 'inherit'] });
    if (r.status !== 0) {
      console.error('resflow serve: building the editor failed; run `npm run build:renderer` to see why');
      return 1;
    }
  }
  return serverMain(argv);
}
