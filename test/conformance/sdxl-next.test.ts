import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatCaseReport, listCases, runConformance } from '../../runtime/conformance/runner.js';
import { sharedPathUnchecked } from '../shared-data.js';

const FOLDER = sharedPathUnchecked('conformance-sdxl-next');

/** Every case of the set; each must pass every compared tensor. */
const IMPLEMENTED = ['refiner-clip', 'refiner-unet', 'refiner-unet-odd', 'resadapter-sdxl-train-shapes', 'refiner-samplers', 'refiner-two-stage', 'lora-sdxl-kohya', 'lora-sdxl-peft', 'controlnet-sdxl-unet', 'controlnet-sdxl-samplers', 'embeddings-sd15', 'embeddings-sdxl'];

describe('ComfyUI conformance (the shared conformance-sdxl-next folder)', () => {
  it('the shared conformance data is present and lists its 12 cases', () => {
    expect(existsSync(join(FOLDER, 'index.json')), `missing ${FOLDER}`).toBe(true);
    expect(listCases(FOLDER)).toHaveLength(12);
  });

  it('the implemented cases pass within their tolerances', async () => {
    const rep = await runConformance(FOLDER, { only: IMPLEMENTED });
    expect(rep.cases.map((c) => c.case).sort()).toEqual([...IMPLEMENTED].sort());
    const failed = rep.cases.filter((c) => !c.pass).map((c) => formatCaseReport(c, false));
    expect(failed).toEqual([]);
    for (const c of rep.cases) expect(c.results.length, c.case).toBeGreaterThan(1);
    // The embedding cases compare every prompt's slots, inserted embeddings and outputs (9 prompts SD1.5, 5 SDXL).
    expect(rep.cases.find((c) => c.case === 'embeddings-sd15')!.results.length).toBe(9 * 8);
    expect(rep.cases.find((c) => c.case === 'embeddings-sdxl')!.results.length).toBe(5 * 16);
  });
});
