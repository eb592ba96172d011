import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { listCases, runConformance, formatCaseReport } from '../../runtime/conformance/runner.js';
import { REPO } from '../nodes/helpers.js';
import { sharedPathUnchecked, shared } from '../shared-data.js';

const FOLDER = sharedPathUnchecked('conformance');

describe('ComfyUI conformance (the shared conformance folder) through `resflow conformance`', () => {
  it('the shared conformance data is present', () => {
    expect(shared('conformance', 'index.json')).toBe(join(FOLDER, 'index.json'));
  });

  it('every case passes within its tolerances', async () => {
    const rep = await runConformance(FOLDER);
    const failed = rep.cases.filter((c) => !c.pass).map((c) => formatCaseReport(c, false));
    expect(failed).toEqual([]);
    expect(rep.cases.map((c) => c.case)).toEqual(listCases(FOLDER));
    // Every listed case kind is covered by the run.
    expect(new Set(rep.cases.map((c) => c.case))).toEqual(
      new Set(['unet', 'unet-odd', 'unet-odd2', 'unet-controlnet', 'unet-controlnet-odd', 'vae', 'clip', 'lora-resadapter', 'lora-peft', 'lora-kohya', 'samplers', 'img2img', 'samplers-controlnet', 'pipeline-txt2img', 'rng']),
    );
    expect(rep.cases.reduce((n, c) => n + c.results.length, 0)).toBeGreaterThan(250);
  });

  it('the CLI prints the table and exits 0 on success, 1 on a failing case', () => {
    const bin = join(REPO, 'bin', 'resflow.js');
    const ok = spawnSync(process.execPath, [bin, 'conformance', FOLDER, '--case', 'unet-odd', '--case', 'rng'], { encoding: 'utf8' });
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/PASS\s+unet-odd/);
    expect(ok.stdout).toMatch(/max err/);
    expect(ok.stdout).toMatch(/2\/2 cases passed/);
    // A folder whose case kind nothing implements must fail, not pass silently.
    const bad = spawnSync(process.execPath, [bin, 'conformance', join(REPO, 'workflows')], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
  });
});
