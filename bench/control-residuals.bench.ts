/**
 * What one UNet session for plain and ControlNet runs costs a plain run: the same UNet compiled without the
 * residual inputs vs with them fed zeros (what UnetModel does for plain calls after a first ControlNet run),
 * step time median, same process.
 *
 *   npx tsx bench/control-residuals.bench.ts [--model demo|sd15] [--size 512] [--batch 2] [--runs 7]
 */
import { parseArgs } from 'node:util';
import { compileGraph, type TensorData } from '../runtime/graph/session.js';
import { openSd1Checkpoint } from '../runtime/models/checkpoint.js';
import { ensureDemoModels } from '../runtime/models/synthetic/demo.js';
import { buildUnetGraph, skipChannels } from '../runtime/models/unet/unet.js';
import { UnetModel } from '../runtime/models/unet/model.js';
import { inferUnetConfig } from '../runtime/models/unet/config.js';
import { ensureSd15Checkpoint, median, reportLoad, BENCH_CACHE } from './lib.js';
import { join } from 'node:path';

const { values: args } = parseArgs({ options: { model: { type: 'string', default: 'demo' }, size: { type: 'string', default: '512' }, batch: { type: 'string', default: '2' }, runs: { type: 'string', default: '7' } } });
reportLoad();
const path = args.model === 'sd15' ? ensureSd15Checkpoint() : ensureDemoModels(join(BENCH_CACHE, 'demo-models')).checkpoint;
const ck = openSd1Checkpoint(path);
const unet = new UnetModel(ck.unet, inferUnetConfig(ck.unet, {}, ck.file.metadata));
const lat = Number(args.size) / 8;
const B = Number(args.batch);
const x = { data: Float32Array.from({ length: B * 4 * lat * lat }, (_, i) => Math.sin(i)), dims: [B, 4, lat, lat] };
const t = { data: new Float32Array(B).fill(500), dims: [B] };
const ctx = { data: Float32Array.from({ length: B * 77 * unet.config.contextDim }, (_, i) => Math.cos(i) / 4), dims: [B, 77, unet.config.contextDim] };
const plain = await compileGraph(buildUnetGraph(unet.weights, unet.config, { overridable: unet.overridable }));
const control = await unet.session(false);
let h = lat;
const zeros: Record<string, TensorData> = {};
unet.config.inputBlocks.forEach((blk, i) => {
  if (blk.kind === 'down') h = Math.ceil(h / 2);
  zeros[`control_${i}`] = { data: new Float32Array(B * skipChannels(unet.config, i) * h * h), dims: [B, skipChannels(unet.config, i), h, h] };
});
zeros.control_middle = { data: new Float32Array(B * skipChannels(unet.config, unet.config.inputBlocks.length - 1) * h * h), dims: [B, skipChannels(unet.config, unet.config.inputBlocks.length - 1), h, h] };
const time = async (f: () => Promise<unknown>) => {
  const t0 = performance.now();
  await f();
  return performance.now() - t0;
};
const a: number[] = [];
const b: number[] = [];
await plain.run({ x, timesteps: t, context: ctx });
await control.run({ x, timesteps: t, context: ctx, ...zeros });
for (let i = 0; i < Number(args.runs); i++) {
  a.push(await time(() => plain.run({ x, timesteps: t, context: ctx })));
  b.push(await time(() => control.run({ x, timesteps: t, context: ctx, ...zeros })));
}
console.log(`${args.model} UNet ${args.size}² batch ${B}: plain session ${median(a).toFixed(1)} ms, one session with zero residuals ${median(b).toFixed(1)} ms: ratio ${(median(b) / median(a)).toFixed(3)}`);
