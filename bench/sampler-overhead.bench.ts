/**
 * Sampler overhead per step, everything except the UNet call, for a 128×128 latent (a 1024² image), batch 1
 * with CFG (the model call sees batch 2). The model is a stand-in that returns instantly, so what is timed is
 * the sampler math, CFG combine, noise draws and bookkeeping. Target: < 2% of a 512² UNet step, passed as
 * --unet-ms (from bench/unet.bench.ts on the same machine) or measured here when the bench checkpoint exists.
 *
 *   npx tsx bench/sampler-overhead.bench.ts [--unet-ms 9000] [--steps 20]
 */
import { parseArgs } from 'node:util';
import { ModelSampling } from '../runtime/sampling/model-sampling.js';
import { sample } from '../runtime/sampling/sample.js';
import { SAMPLER_NAMES } from '../runtime/sampling/samplers/index.js';
import type { EpsModel } from '../runtime/sampling/types.js';
import { median, reportLoad } from './lib.js';

const { values } = parseArgs({ options: { 'unet-ms': { type: 'string' }, steps: { type: 'string', default: '20' } } });
const steps = Number(values.steps);
reportLoad();
const shape: [number, number, number, number] = [1, 4, 128, 128];
const n = 4 * 128 * 128;
const context = new Float32Array(77 * 768);
let calls = 0;
// Returns a fresh array like a real model would (the sampler owns what it gets back).
const model: EpsModel = async (x) => {
  calls++;
  return new Float32Array(x.length).fill(0.01);
};
const results: Array<[string, number]> = [];
for (const sampler of SAMPLER_NAMES) {
  const times: number[] = [];
  for (let rep = 0; rep < 3; rep++) {
    calls = 0;
    const t0 = performance.now();
    await sample({
      model,
      modelSampling: new ModelSampling(),
      sampler,
      scheduler: 'karras',
      steps,
      cfg: 7,
      seed: 1,
      latent: { data: new Float32Array(n), shape },
      positive: { context, contextShape: [1, 77, 768] },
      negative: { context, contextShape: [1, 77, 768] },
    });
    times.push((performance.now() - t0) / calls);
  }
  results.push([sampler, median(times)]);
}
const unetMs = values['unet-ms'] ? Number(values['unet-ms']) : undefined;
for (const [s, ms] of results) {
  const pct = unetMs ? `  = ${((ms / unetMs) * 100).toFixed(3)}% of a ${unetMs} ms 512² UNet step (target < 2%) ${ms / unetMs < 0.02 ? 'OK' : 'MISS'}` : '';
  console.log(`${s.padEnd(22)} ${ms.toFixed(2)} ms per model call${pct}`);
}
if (!unetMs) console.log('pass --unet-ms <median 512² step from bench/unet.bench.ts> to print the ratio');
