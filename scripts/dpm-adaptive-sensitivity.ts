/**
 * Why dpm_adaptive's step path cannot be matched callback for callback: reruns the recorded dpm_adaptive
 * runs of conformance-samplers/ksampler-ode and reports
 *   - where our step_x parts from ComfyUI's;
 *   - the UNet evaluations up to there nearest a timestep boundary, each moved alone to the neighbouring
 *     timestep: where the path then parts, and how many callbacks it makes;
 *   - the callback count when every eps is scaled within float32 noise (FLOAT32_NOISE_SCALINGS).
 *
 *   npx tsx scripts/dpm-adaptive-sensitivity.ts [path/to/conformance-samplers/ksampler-ode]
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConformanceCase } from '../runtime/conformance/case.js';
import { CaseModels } from '../runtime/conformance/models.js';
import { FLOAT32_NOISE_SCALINGS, PATH_PARTED, recordedAdaptiveRun, stepXErrors, traceDpmAdaptive, type AdaptiveTrace } from '../runtime/conformance/adaptive-probe.js';
import type { KSamplerRun } from '../runtime/conformance/kinds/ksampler-runs.js';

const NEAREST = 4;

const folder = resolve(process.argv[2] ?? '../shared/conformance-samplers/ksampler-ode');
if (!existsSync(join(folder, 'case.json'))) {
  console.error(`no case.json in ${folder}: pass the path of conformance-samplers/ksampler-ode`);
  process.exit(2);
}
const c = new ConformanceCase(folder);
const models = new CaseModels();
const runs = (c.json.params.runs as KSamplerRun[]).filter((r) => r.sampler === 'dpm_adaptive').map((r) => recordedAdaptiveRun(c, r.name));
if (!runs.length) throw new Error(`${folder}: no dpm_adaptive runs in case.json`);

const e = (v: number) => v.toExponential(1);

function parting(errors: number[]): number {
  const i = errors.findIndex((v) => v > PATH_PARTED);
  return i < 0 ? errors.length : i;
}

function describe(label: string, trace: AdaptiveTrace, errors: number[], expected: number): void {
  const at = parting(errors);
  const before = at > 0 ? Math.max(...errors.slice(0, at)) : 0;
  const path = at < errors.length ? `step_x within ${e(before)} through callback ${at - 1}, ${e(errors[at]!)} at ${at}` : `step_x within ${e(before)} at every shared callback`;
  console.log(`    ${label}: ${trace.callbacks} callbacks (ComfyUI ${expected}); ${path}`);
}

for (const run of runs) {
  console.log(`${run.name}`);
  const plain = await traceDpmAdaptive(c, models, run.name);
  const errors = stepXErrors(c, run.name, plain);
  console.log(`  ours as built:`);
  describe('plain', plain, errors, run.n_callbacks);

  const at = parting(errors);
  const nearest = plain.evaluations
    .filter((v) => v.callback <= at)
    .sort((a, b) => a.boundaryDistance - b.boundaryDistance)
    .slice(0, NEAREST);
  console.log(`  the ${NEAREST} of ${plain.evaluations.length} UNet evaluations nearest a timestep boundary up to callback ${at}, each moved alone across it:`);
  for (const v of nearest) {
    const forced = await traceDpmAdaptive(c, models, run.name, { forceTimestep: { sigma: v.sigma, timestep: v.neighbour } });
    describe(`callback ${v.callback}, sigma ${v.sigma.toPrecision(8)}, ${e(v.boundaryDistance)} from the boundary, timestep ${v.timestep} -> ${v.neighbour}`, forced, stepXErrors(c, run.name, forced), run.n_callbacks);
  }

  const counts: string[] = [];
  for (const scale of FLOAT32_NOISE_SCALINGS) {
    const k = Math.round((scale - 1) * 2 ** 24);
    counts.push(`${k > 0 ? '+' : ''}${k}: ${(await traceDpmAdaptive(c, models, run.name, { epsScale: scale })).callbacks}`);
  }
  console.log(`  callbacks with eps x (1 + k·2^-24), k ${counts.join(', ')}`);
}
