import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { SHAPES_RESADAPTER } from '../../runtime/shapes/arch.js';
import { REPO } from '../nodes/helpers.js';

describe('npm run demo (ResFlow Shapes)', () => {
  it('renders 128², 256², 64² and 256×128 (base, and the ResAdapter when shipped), prints the scored table and writes the grid', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'resflow-shapes-demo-'));
    const r = spawnSync(process.execPath, [join(REPO, 'bin', 'resflow.js'), 'demo', '--n', '1', '--steps', '6'], { cwd: dir, encoding: 'utf8', env: { ...process.env, RESFLOW_DATA_DIR: dir }, timeout: 300_000 });
    expect(r.status, r.stderr).toBe(0);
    const rows = r.stdout.split('\n').filter((l) => /^\| (base|base \+ ResAdapter|ResAdapter LoRA only) \|/.test(l));
    const methods = existsSync(join(dir, 'models', 'resadapters', SHAPES_RESADAPTER)) ? 3 : 1;
    expect(rows).toHaveLength(4 * methods);
    for (const size of ['128×128', '256×256', '64×64', '256×128']) expect(rows.filter((l) => l.includes(`| ${size} | 1 |`))).toHaveLength(methods);
    const grid = join(dir, 'output', 'resflow-shapes-demo.png');
    const meta = await sharp(grid).metadata();
    expect(meta.format).toBe('png');
    expect(meta.width).toBeGreaterThan(128 + 256 + 64 + 256);
  }, 300_000);
});
