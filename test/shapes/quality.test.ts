/**
 * What the shipped Shapes weights draw, measured the way `resflow eval-resolution` measures it: 8 fixed
 * (prompt, seed) pairs (the evaluation's first 8), scored by runtime/shapes/score.ts. The base at 128² must pass
 * every check on at least 7 of the 8 (the target); the ResAdapter's floors are its measured results less one
 * picture, so retrained weights that draw worse fail here; at 256², where the base duplicates its object, the
 * adapter must draw one object on clearly more pictures than the base.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../nodes/helpers.js';

interface Cell {
  method: string;
  width: number;
  passed: Record<'oneObject' | 'objectColour' | 'shape' | 'background' | 'all', number>;
}

function evaluate(args: string[]): Cell[] {
  const dir = mkdtempSync(join(tmpdir(), 'resflow-shapes-quality-'));
  const r = spawnSync(process.execPath, [join(REPO, 'bin', 'resflow.js'), 'eval-resolution', '--n', '8', '--json', '--out', dir, ...args], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, RESFLOW_DATA_DIR: dir },
    timeout: 300_000,
  });
  expect(r.status, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { cells: Cell[] }).cells;
}

type Check = Cell['passed'];
// Shipped weights (UNet 12000 steps with offset noise + the 1200-step ResAdapter), first 8 seeds, measured:
// base 128² 8 / 8 / 8 / 8 (all four 8); ResAdapter 128² 8 / 8 / 7 / 8 (all four 7); one object at 256²: base 0, ResAdapter 5.
const FLOOR_BASE: Check = { oneObject: 7, objectColour: 7, shape: 7, background: 7, all: 7 };
const FLOOR_ADAPTED: Check = { oneObject: 7, objectColour: 7, shape: 6, background: 7, all: 6 };

describe('the shipped ResFlow Shapes weights (8 fixed seeds)', () => {
  it('draw the prompted scene at their own 128², with and without their ResAdapter; the adapter undoes 256² duplicates', () => {
    const cells = evaluate(['--sizes', '128x128,256x256', '--methods', 'base,resadapter']);
    const at = (method: string, side: number) => cells.find((c) => c.method === method && c.width === side)!.passed;
    const [base, adapted] = [at('base', 128), at('resadapter', 128)];
    for (const [k, v] of Object.entries(FLOOR_BASE)) expect(base[k as keyof Check], k).toBeGreaterThanOrEqual(v);
    for (const [k, v] of Object.entries(FLOOR_ADAPTED)) expect(adapted[k as keyof Check], `ResAdapter ${k}`).toBeGreaterThanOrEqual(v);
    expect(at('resadapter', 256).oneObject, 'one object at 256²: ResAdapter vs base').toBeGreaterThanOrEqual(at('base', 256).oneObject + 3);
  }, 300_000);
});
