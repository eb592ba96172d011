import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatCaseReport, listCases, runConformance } from '../../runtime/conformance/runner.js';
import { sharedPathUnchecked } from '../shared-data.js';

const FOLDER = sharedPathUnchecked('conformance-nodes');

/** The cases of the shared conformance-nodes folder about models (patches, merges, upscale models, hypernetworks). */
const MODEL_CASES = ['freeu', 'deep-shrink', 'hypertile', 'model-merge', 'clip-merge', 'upscale-model', 'hypernetwork'];

describe('ComfyUI model-node conformance (the shared conformance-nodes folder)', () => {
  it('the shared data is present and lists these cases', () => {
    expect(existsSync(join(FOLDER, 'index.json')), `missing ${FOLDER}`).toBe(true);
    const listed = listCases(FOLDER);
    for (const c of MODEL_CASES) expect(listed).toContain(c);
  });

  for (const name of MODEL_CASES) {
    it(`${name} passes within its tolerances`, async () => {
      const rep = await runConformance(FOLDER, { only: [name] });
      expect(rep.cases.map((c) => c.case)).toEqual([name]);
      const failed = rep.cases.filter((c) => !c.pass).map((c) => formatCaseReport(c, false));
      expect(failed).toEqual([]);
      // The runner fails a case that leaves an expected (non-debug) tensor unchecked; this guards an empty run.
      expect(rep.cases[0]!.results.length).toBeGreaterThanOrEqual(7);
    });
  }
});
