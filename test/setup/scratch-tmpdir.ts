/**
 * vitest globalSetup: every temporary file the suite makes (data dirs, model folders, caches written by spawned CLIs)
 * goes under one fresh folder, removed when the run ends, so repeated runs do not fill the disk. Test workers and
 * the processes they spawn inherit TMPDIR, which os.tmpdir() reads.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const previous = process.env.TMPDIR;
  const dir = mkdtempSync(join(tmpdir(), 'resflow-tests-'));
  process.env.TMPDIR = dir;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    if (!process.env.RESFLOW_KEEP_TEST_TMP) rmSync(dir, { recursive: true, force: true });
  };
}
