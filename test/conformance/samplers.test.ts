import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FLOAT32_NOISE_SCALINGS, PATH_PARTED, perStepMaxError, recordedAdaptiveRun, traceDpmAdaptive } from '../../runtime/conformance/adaptive-probe.js';
import { ConformanceCase } from '../../runtime/conformance/case.js';
import { CaseModels } from '../../runtime/conformance/models.js';
import { formatCaseReport, listCases, runConformance } from '../../runtime/conformance/runner.js';
import { REPO } from '../nodes/helpers.js';
import { sharedPathUnchecked } from '../shared-data.js';

const SAMPLERS = sharedPathUnchecked('conformance-samplers');
const NEXT = sharedPathUnchecked('conformance-next');

/** Whether two step paths differ by more than float32 drift at some shared callback. */
const pathsPart = (a: Float32Array[], b: Float32Array[]) => perStepMaxError(a, b).some((e) => e > PATH_PARTED);

describe('ComfyUI sampler conformance (the shared conformance-samplers and conformance-next folders)', () => {
  it('the shared data is present', () => {
    expect(existsSync(join(SAMPLERS, 'index.json')), `missing ${SAMPLERS}`).toBe(true);
    expect(existsSync(join(NEXT, 'index.json')), `missing ${NEXT}`).toBe(true);
  });

  it('every sampler, scheduler, custom-sampling and model-sampling case passes', async () => {
    const rep = await runConformance(SAMPLERS);
    // The one known gap: dpm_adaptive picks its own steps from an error norm, and each UNet evaluation maps its
    // sigma to a discrete timestep. Our float32 UNet agrees with torch's to its own float32-vs-float64 error, yet
    // one evaluation lands ~4e-6 (log sigma) from a timestep boundary and falls the other way, so the step paths
    // part and the callback count can differ (the next test; scripts/dpm-adaptive-sensitivity.ts shows where).
    // Its final samples must still match; its per-step trajectory is what `resflow conformance` reports.
    const trajectoryGap = (r: { tensor: string }) => /^dpm_adaptive\/[^/]+\/step_(x|denoised)$/.test(r.tensor);
    const failed = rep.cases.flatMap((c) => c.results.filter((r) => !r.pass && !trajectoryGap(r)).map((r) => `${c.case}: ${r.tensor} ${r.note ?? ''}`));
    expect(failed).toEqual([]);
    const adaptiveFinals = rep.cases.flatMap((c) => c.results).filter((r) => r.tensor.startsWith('dpm_adaptive/') && !trajectoryGap(r));
    expect(adaptiveFinals.length).toBeGreaterThan(0);
    expect(adaptiveFinals.every((r) => r.pass)).toBe(true);
    expect(rep.cases.map((c) => c.case)).toEqual(listCases(SAMPLERS));
    expect(new Set(rep.cases.map((c) => c.case))).toEqual(new Set(['schedulers', 'ksampler-ode', 'ksampler-ancestral', 'ksampler-brownian', 'custom-sampling', 'model-sampling']));
    expect(rep.cases.reduce((n, c) => n + c.results.length, 0)).toBeGreaterThan(700);
  }, 300_000);

  it("dpm_adaptive's step path is not determined at float32 resolution (why its trajectory is exempt above)", async () => {
    const c = new ConformanceCase(join(SAMPLERS, 'ksampler-ode'));
    const models = new CaseModels();
    const counts: number[] = [];
    const recorded: number[] = [];
    for (const run of ['dpm_adaptive/karras', 'dpm_adaptive/normal']) {
      const plain = await traceDpmAdaptive(c, models, run);
      counts.push(plain.callbacks);
      let parted = 0;
      for (const epsScale of FLOAT32_NOISE_SCALINGS) {
        const moved = await traceDpmAdaptive(c, models, run, { epsScale });
        counts.push(moved.callbacks);
        if (moved.callbacks !== plain.callbacks || pathsPart(plain.stepX, moved.stepX)) parted++;
      }
      // Eps moved by under 1e-6 relative sends the sampler down another path for most of these scalings.
      expect(parted, `${run}: ${parted} of ${FLOAT32_NOISE_SCALINGS.length} scalings part the step path`).toBeGreaterThan(FLOAT32_NOISE_SCALINGS.length / 2);
      recorded.push(recordedAdaptiveRun(c, run).n_callbacks);
    }
    // ...and the callback count with it: ComfyUI's counts are among several outcomes.
    for (const n of recorded) expect(counts).toContain(n);
    expect(new Set(counts).size, `callback counts ${counts.join(', ')}`).toBeGreaterThan(1);
  }, 120_000);

  it('the Brownian tree and the stock SDE samplers reproduce torchsde from the seed', async () => {
    const rep = await runConformance(NEXT);
    const failed = rep.cases.filter((c) => !c.pass).map((c) => formatCaseReport(c, false));
    expect(failed).toEqual([]);
    expect(new Set(rep.cases.map((c) => c.case))).toEqual(new Set(['samplers-sde', 'brownian']));
  }, 120_000);

  it('`resflow conformance` runs these folders from the CLI', () => {
    const bin = join(REPO, 'bin', 'resflow.js');
    const r = spawnSync(process.execPath, [bin, 'conformance', NEXT, '--case', 'brownian'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/PASS\s+brownian/);
    expect(r.stdout).toMatch(/1\/1 cases passed/);
  });
});
