/**
 * What the shipped Shapes weights draw, measured the way `resflow eval-resolution` measures it: 8 fixed
 * (prompt, seed) pairs at the base resolution, scored by runtime/shapes/score.ts. The floors are the shipped
 * weights' measured results (docs/resolution-eval.md) less one picture, so retrained weights that draw worse fail
 * here; the issue's target (7 of 8 passing every check) is not reached yet and is stated there, not asserted.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../nodes/helpers.js';

interface Cell {
  method: string;
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
// Shipped weights (UNet 12000 steps from identity-initialised norms + the 1200-step ResAdapter), first 8 seeds of
// the N = 32 run in docs/resolution-eval.md: base 4 / 5 / 5 / 4 (all four: 1), ResAdapter 6 / 4 / 3 / 5 (all four: 2).
const FLOOR_BASE: Partial<Check> = { oneObject: 3, objectColour: 4, shape: 4, background: 3 };
const FLOOR_ADAPTED: Partial<Check> = { oneObject: 5, objectColour: 3, shape: 2, background: 4, all: 1 };

describe('the shipped ResFlow Shapes weights at 128² (8 fixed seeds)', () => {
  it('draw the prompted scene at their own resolution, with and without their ResAdapter', () => {
    const cells = evaluate(['--sizes', '128x128', '--methods', 'base,resadapter']);
    const base = cells.find((c) => c.method === 'base')!.passed;
    const adapted = cells.find((c) => c.method === 'resadapter')!.passed;
    for (const [k, v] of Object.entries(FLOOR_BASE)) expect(base[k as keyof typeof base], k).toBeGreaterThanOrEqual(v);
    for (const [k, v] of Object.entries(FLOOR_ADAPTED)) expect(adapted[k as keyof typeof adapted], `ResAdapter ${k}`).toBeGreaterThanOrEqual(v);
  }, 300_000);
});
