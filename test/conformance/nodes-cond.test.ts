import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatCaseReport, listCases, runConformance } from '../../runtime/conformance/runner.js';
import { REPO } from '../nodes/helpers.js';
import { sharedPathUnchecked } from '../shared-data.js';

const FOLDER = sharedPathUnchecked('conformance-nodes');

/** The conformance-nodes cases of conditioning composition, inpainting, masks, latent and image ops. */
const CASES = ['conditioning-area', 'conditioning-mask', 'conditioning-ops', 'inpaint', 'masks', 'latent-ops', 'latent-resize', 'image-resize'];

describe('ComfyUI core-node conformance (the shared conformance-nodes folder): conditioning, inpainting, masks, resizing', () => {
  it('the shared data is present and lists these cases', () => {
    expect(existsSync(join(FOLDER, 'index.json')), `missing ${FOLDER}`).toBe(true);
    const listed = listCases(FOLDER);
    for (const c of CASES) expect(listed).toContain(c);
  });

  it('every case passes within its tolerances, every expected tensor compared', async () => {
    const rep = await runConformance(FOLDER, { only: CASES });
    const failed = rep.cases.filter((c) => !c.pass).map((c) => formatCaseReport(c, false));
    expect(failed).toEqual([]);
    expect(rep.cases.map((c) => c.case).sort()).toEqual([...CASES].sort());
    const count = (name: string) => rep.cases.find((c) => c.case === name)!.results.length;
    // Sampler runs with per-step tensors, not just the final latent.
    expect(count('conditioning-area')).toBeGreaterThanOrEqual(36);
    expect(count('conditioning-ops')).toBeGreaterThanOrEqual(39);
    expect(count('inpaint')).toBeGreaterThanOrEqual(39);
    expect(count('latent-resize')).toBe(45);
    expect(count('image-resize')).toBe(45);
  }, 600_000);

  it('the CLI runs a subset of the folder and exits 0 when it passes', () => {
    const bin = join(REPO, 'bin', 'resflow.js');
    const ok = spawnSync(process.execPath, [bin, 'conformance', FOLDER, '--case', 'masks', '--case', 'latent-ops'], { encoding: 'utf8' });
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/PASS\s+masks/);
    expect(ok.stdout).toMatch(/2\/2 cases passed/);
  });
});
