import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEMO_CHECKPOINT, DEMO_RESADAPTER } from '../../runtime/models/synthetic/demo.js';
import { sampleScene, sceneCaption } from '../../runtime/shapes/dataset.js';
import { EVAL_SCENE_SEED } from '../../runtime/shapes/eval-run.js';
import { REPO } from '../nodes/helpers.js';

const BIN = join(REPO, 'bin', 'resflow.js');

function cli(args: string[], cwd: string) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', env: { ...process.env, RESFLOW_DATA_DIR: cwd }, timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface CellJson {
  method: string;
  width: number;
  height: number;
  n: number;
  passed: Record<string, number>;
  unetPassesPerStep: number;
  secondsPerImage: number;
  samples: Array<{ seed: number; caption: string; checks: Record<string, boolean> }>;
}

describe('resflow eval-resolution (demo model)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'resflow-eval-'));
  });

  it('samples every (method, size) through the executor, scores them, reports UNet passes and writes the grid', async () => {
    const out = join(dir, 'eval-out');
    const r = cli(['eval-resolution', '--model', DEMO_CHECKPOINT, '--resadapter', DEMO_RESADAPTER, '--n', '2', '--sizes', '64x64,128x64', '--steps', '2', '--methods', 'base,multidiffusion,norms', '--base-size', '64', '--out', out, '--json'], dir);
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout) as { grid: string; cells: CellJson[]; settings: Record<string, unknown> };
    expect(res.settings).toMatchObject({ checkpoint: DEMO_CHECKPOINT, resadapter: DEMO_RESADAPTER, steps: 2, n: 2, baseSize: 64 });
    expect(res.cells.map((c) => `${c.method}@${c.width}x${c.height}`)).toEqual(['base@64x64', 'base@128x64', 'multidiffusion@64x64', 'multidiffusion@128x64', 'norms@64x64', 'norms@128x64']);
    for (const c of res.cells) {
      expect(c.n).toBe(2);
      // Same prompts and seeds in every cell: the evaluation's fixed scene stream.
      expect(c.samples.map((s) => s.caption)).toEqual([0, 1].map((i) => sceneCaption(sampleScene(EVAL_SCENE_SEED, i))));
      expect(c.samples.map((s) => s.seed)).toEqual([0, 1]);
      for (const k of ['oneObject', 'objectColour', 'shape', 'background']) expect(c.passed[k]).toBe(c.samples.filter((s) => s.checks[k]).length);
      expect(c.secondsPerImage).toBeGreaterThan(0);
    }
    const passes = Object.fromEntries(res.cells.map((c) => [`${c.method}@${c.width}x${c.height}`, c.unetPassesPerStep]));
    // 64² windows at stride 32 over a 128×64 image: latent 16×8, windows at x = 0, 4, 8.
    expect(passes).toEqual({ 'base@64x64': 1, 'base@128x64': 1, 'multidiffusion@64x64': 1, 'multidiffusion@128x64': 3, 'norms@64x64': 1, 'norms@128x64': 1 });
    expect(res.grid).toBe(join(out, 'eval-resolution.png'));
    const meta = await sharp(res.grid).metadata();
    expect(meta.format).toBe('png');
    // Three method rows of at least 64 px, and both size columns holding two samples each.
    expect(meta.height).toBeGreaterThan(3 * 64);
    expect(meta.width).toBeGreaterThan(2 * 64 + 2 * 128);
  });

  it('prints a markdown table by default', () => {
    const r = cli(['eval-resolution', '--model', DEMO_CHECKPOINT, '--n', '1', '--sizes', '64x64', '--steps', '1', '--methods', 'base'], dir);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^\| method \| size \| N \| one object \| object colour \| shape \| background \| all four \| UNet passes \/ step \| s \/ image \|$/);
    expect(lines[2]).toMatch(/^\| base \| 64×64 \| 1 \| (0|100)% \|/);
    expect(existsSync(join(dir, 'output', 'eval-resolution.png'))).toBe(true);
  });

  it('refuses bad options with exit code 2 and a message naming them', () => {
    const bad = (args: string[], msg: RegExp) => {
      const r = cli(['eval-resolution', '--model', DEMO_CHECKPOINT, ...args], dir);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(msg);
    };
    bad(['--sizes', '64x'], /--sizes: "64x" is not WIDTHxHEIGHT/);
    bad(['--sizes', '60x64'], /multiples of 8/);
    bad(['--methods', 'nope'], /unknown method "nope"/);
    bad(['--methods', 'resadapter', '--resadapter', 'missing-adapter'], /"missing-adapter" is not in the resadapters folder/);
    bad(['--n', '0'], /--n: "0"/);
    const r = cli(['eval-resolution', '--model', 'no-such.safetensors'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/checkpoint "no-such.safetensors" is not in/);
  });
});
