/**
 * fp32 vs int8 on the full-size SD1.5 UNet (random F16 weights, real key layout), batch 2 as with CFG:
 * median s/step at the timing size, ratio int8 / fp32, peak and steady RSS of a process holding only the UNet,
 * and quality: eps relative RMS at the timing size, and along 20 Euler steps at the quality size the per-step
 * eps error (int8 on the fp32 trajectory's inputs) and the final latent's error (each on its own trajectory).
 * Each precision runs in its own child process, one after the other, so RSS figures are the UNet's own.
 * Prints the ISA, the fp32 FMA peak and ORT's 2048³ MatMul measured in the same run, and the machine load.
 * Also times the plain form of the decoders' upsamplers (nearest 2× then 3×3 conv, as before the sub-pixel
 * lowering; RESFLOW_SUBPIXEL=0 / `subpixel: false`): "fp32 plain" is the issue's "today's fp32".
 * `--skip-plain` skips those; `--plain-int8` also times the UNet's plain int8 form. `--isa avx2` runs everything
 * with bench/cpuid-mask.c preloaded, so ONNX Runtime dispatches as on an AVX2-only CPU (no AVX-512, VNNI, AMX).
 *
 *   npx tsx bench/int8.bench.ts [--size 512] [--steps 3] [--quality-size 256] [--euler 20] [--skip-plain] [--plain-int8] [--isa avx2]
 */
import { relativeRms } from '../runtime/graph/quantize.js';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { countFlops } from '../runtime/graph/flops.js';
import type { Precision } from '../runtime/graph/precision.js';
import { openSd1Checkpoint } from '../runtime/models/checkpoint.js';
import { SeededRandom } from '../runtime/models/synthetic/generate.js';
import { inferUnetConfig } from '../runtime/models/unet/config.js';
import { UnetModel } from '../runtime/models/unet/model.js';
import { Vae } from '../runtime/models/vae/index.js';
import { buildUnetGraph } from '../runtime/models/unet/unet.js';
import { ModelSampling } from '../runtime/sampling/model-sampling.js';
import { calculateSigmas } from '../runtime/sampling/schedulers.js';
import { BENCH_CACHE, cpuIsa, isaMasked, runUnderIsa, ensureSd15Checkpoint, fmaPeakGflops, gib, median, peakRssBytes, reportLoad, timeIt, ortMatmulYardstick } from './lib.js';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '512' },
    steps: { type: 'string', default: '3' },
    'quality-size': { type: 'string', default: '256' },
    euler: { type: 'string', default: '20' },
    child: { type: 'string' },
    vae: { type: 'boolean', default: true },
    'skip-plain': { type: 'boolean', default: false },
    'plain-int8': { type: 'boolean', default: false },
    work: { type: 'string' },
    isa: { type: 'string' },
  },
});
const size = Number(values.size);
const steps = Number(values.steps);
const qSize = Number(values['quality-size']);
const eulerSteps = Number(values.euler);
const log = (s: string) => console.log(s);
// The issue's targets: VNNI/AMX machines ≤ 0.55 × fp32 (UNet) and ≤ 0.6 × (VAE); AVX2-only machines faster than fp32.
const unetTarget = isaMasked() ? { max: 1, label: '< 1 on AVX2' } : { max: 0.55, label: '≤ 0.55' };
const vaeTarget = isaMasked() ? { max: 1, label: '< 1 on AVX2' } : { max: 0.6, label: '≤ 0.6' };

interface ChildResult {
  precision: Precision;
  /** Timed with the plain upsampler form (RESFLOW_SUBPIXEL=0). */
  plain: boolean;
  buildS: number;
  times: number[];
  peakRss: number;
  steadyRss: number;
  weightBytes: number;
}

const f32File = (path: string) => new Float32Array(readFileSync(path).buffer.slice(0));
const save = (path: string, a: Float32Array) => writeFileSync(path, new Uint8Array(a.buffer, a.byteOffset, a.byteLength));


const variantName = (precision: Precision, plain: boolean) => `${precision}${plain ? '-plain' : ''}`;

/** One precision in this process: session build, timed steps, an Euler run; arrays go to files in `work`. */
async function child(precision: Precision, work: string): Promise<void> {
  const plain = process.env.RESFLOW_SUBPIXEL === '0';
  const name = variantName(precision, plain);
  const rng = new SeededRandom(3);
  const ck = openSd1Checkpoint(ensureSd15Checkpoint(log));
  const unet = new UnetModel(ck.unet, inferUnetConfig(ck.unet, {}, ck.file.metadata));
  unet.precision = precision;
  const [session, buildMs] = await timeIt(() => unet.session(false));
  const ctx = { data: rng.fillNormal(new Float32Array(2 * 77 * 768), 0, 1), dims: [2, 77, 768] };
  const lat = size / 8;
  const x = { data: rng.fillNormal(new Float32Array(2 * 4 * lat * lat), 0, 1), dims: [2, 4, lat, lat] };
  const ts = new Float32Array([500, 500]);
  const first = await unet.eps(x, ts, ctx);
  save(join(work, `${name}-eps.bin`), first.data as Float32Array);
  const times: number[] = [];
  for (let i = 0; i < steps; i++) times.push((await timeIt(() => unet.eps(x, ts, ctx)))[1] / 1000);
  const result: ChildResult = { precision, plain, buildS: buildMs / 1000, times, peakRss: peakRssBytes(), steadyRss: process.memoryUsage().rss, weightBytes: session.weightBytes };
  if (plain) {
    // The plain forms are timed only; quality is measured on the default (sub-pixel) forms.
    writeFileSync(join(work, `${name}.json`), JSON.stringify(result));
    return;
  }

  // Euler at the quality size. fp32 records its trajectory; int8 also evaluates eps on fp32's inputs.
  const ms = new ModelSampling();
  const sigmas = calculateSigmas(ms, 'normal', eulerSteps);
  const ql = qSize / 8;
  const n = 2 * 4 * ql * ql;
  const noise = new SeededRandom(5).fillNormal(new Float32Array(n), 0, 1);
  const cur = Float32Array.from(noise, (v) => v * sigmas[0]!);
  const dims = [2, 4, ql, ql];
  const tsFor = (s: number) => new Float32Array([ms.sigmaToTimestep(s), ms.sigmaToTimestep(s)]);
  const cin = (v: Float32Array, s: number) => Float32Array.from(v, (e) => e / Math.sqrt(s * s + 1));
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i]!;
    const input = cin(cur, s);
    const eps = (await unet.eps({ data: input, dims }, tsFor(s), ctx)).data as Float32Array;
    if (precision === 'fp32') {
      save(join(work, `traj-x-${i}.bin`), input);
      save(join(work, `traj-eps-${i}.bin`), eps);
    } else {
      const forced = (await unet.eps({ data: f32File(join(work, `traj-x-${i}.bin`)), dims }, tsFor(s), ctx)).data as Float32Array;
      save(join(work, `int8-eps-${i}.bin`), forced);
    }
    const dt = sigmas[i + 1]! - s;
    for (let j = 0; j < n; j++) cur[j] = cur[j]! + eps[j]! * dt;
  }
  save(join(work, `${precision}-final.bin`), cur);
  writeFileSync(join(work, `${name}.json`), JSON.stringify({ ...result, peakRss: peakRssBytes(), steadyRss: process.memoryUsage().rss }));
}

/** VAE decode 512² batch 1: fp32 and int8 sessions of the same weights, plain and sub-pixel upsamplers (one process). */
async function vaeChild(work: string, plainToo: boolean): Promise<void> {
  const ck = openSd1Checkpoint(ensureSd15Checkpoint(log));
  const z = { data: new SeededRandom(9).fillNormal(new Float32Array(4 * 64 * 64), 0, 1), shape: [1, 4, 64, 64] as [number, number, number, number] };
  const res: Record<string, number[]> = {};
  const imgs: Record<string, Float32Array> = {};
  for (const precision of ['fp32', 'int8'] as const) {
    for (const plain of plainToo ? [true, false] : [false]) {
      const name = variantName(precision, plain);
      const vae = await Vae.load(ck.file, { prefix: 'first_stage_model.', compile: { precision, subpixel: !plain } });
      imgs[name] = Float32Array.from((await vae.decodeRaw(z)).data);
      res[name] = [];
      for (let i = 0; i < 2; i++) res[name].push((await timeIt(() => vae.decodeRaw(z)))[1] / 1000);
      await vae.dispose();
    }
  }
  const err: Record<string, number> = { int8: relativeRms(imgs.int8!, imgs.fp32!) };
  if (plainToo) {
    err['fp32-vs-plain'] = relativeRms(imgs.fp32!, imgs['fp32-plain']!);
    err['int8-vs-plain'] = relativeRms(imgs.int8!, imgs['fp32-plain']!);
  }
  writeFileSync(join(work, 'vae.json'), JSON.stringify({ times: res, err }));
}

async function parent(): Promise<void> {
  reportLoad(log);
  const isa = cpuIsa();
  const fma = fmaPeakGflops(2);
  log(`ISA: ${isa}`);
  log(`fp32 FMA peak (2 threads, same run): ${fma ? `${fma.toFixed(1)} GFLOP/s` : 'n/a (no C compiler)'}`);
  const { gflops: mmGflops } = await ortMatmulYardstick();
  log(`ORT fp32 MatMul 2048³: ${mmGflops.toFixed(1)} GFLOP/s${fma ? ` (${((100 * mmGflops) / fma).toFixed(0)}% of FMA peak)` : ''}`);
  const ckPath = ensureSd15Checkpoint(log);

  const work = join(BENCH_CACHE, `int8-${process.pid}`);
  mkdirSync(work, { recursive: true });
  const cacheDir = join(BENCH_CACHE, `int8-cache-${process.pid}`);
  process.on('exit', () => {
    rmSync(work, { recursive: true, force: true });
    rmSync(cacheDir, { recursive: true, force: true });
  });
  const results: Record<string, ChildResult> = {};
  // fp32 (sub-pixel) first: it writes the trajectory the int8 child evaluates on.
  const variants: Array<[Precision, boolean]> = [['fp32', false], ['int8', false]];
  if (!values['skip-plain']) variants.push(['fp32', true]);
  if (values['plain-int8']) variants.push(['int8', true]);
  for (const [precision, plain] of variants) {
    const args = [...process.execArgv, fileURLToPath(import.meta.url), '--child', precision, '--work', work, '--size', String(size), '--steps', String(steps), '--quality-size', String(qSize), '--euler', String(eulerSteps)];
    const r = spawnSync(process.execPath, args, { stdio: 'inherit', env: { ...process.env, RESFLOW_CACHE_DIR: cacheDir, RESFLOW_SUBPIXEL: plain ? '0' : '1' } });
    const name = variantName(precision, plain);
    if (r.status !== 0) throw new Error(`${name} child failed (${r.status ?? r.signal})`);
    results[name] = JSON.parse(readFileSync(join(work, `${name}.json`), 'utf8')) as ChildResult;
  }
  let vae: { times: Record<string, number[]>; err: Record<string, number> } | undefined;
  if (values.vae) {
    const vaeArgs = [...process.execArgv, fileURLToPath(import.meta.url), '--child', 'vae', '--work', work, ...(values['skip-plain'] ? ['--skip-plain'] : [])];
    const r = spawnSync(process.execPath, vaeArgs, { stdio: 'inherit', env: { ...process.env, RESFLOW_CACHE_DIR: cacheDir } });
    if (r.status !== 0) throw new Error(`vae child failed (${r.status ?? r.signal})`);
    vae = JSON.parse(readFileSync(join(work, 'vae.json'), 'utf8'));
  }
  const ck = openSd1Checkpoint(ckPath);
  const config = inferUnetConfig(ck.unet, {}, ck.file.metadata);
  const flops = countFlops(buildUnetGraph(ck.unet, config, {}), { x: [2, 4, size / 8, size / 8], timesteps: [2], context: [2, 77, 768] }).matmulFlops;
  reportLoad(log);
  log(`\nSD1.5 UNet ${size}² batch 2 (${(flops / 1e12).toFixed(3)} TFLOP/step; fp32-equivalent GFLOP/s):`);
  const f = results.fp32!;
  const q = results.int8!;
  const fp = results['fp32-plain'];
  for (const r of [fp, f, results['int8-plain'], q]) {
    if (!r) continue;
    const t = median(r.times);
    const g = flops / t / 1e9;
    log(
      `  ${r.precision}${r.plain ? ' plain upsamplers' : ''}: ${t.toFixed(2)} s/step [${r.times.map((v) => v.toFixed(2)).join(' ')}] → ${g.toFixed(1)} GFLOP/s = ${(g / mmGflops).toFixed(2)}× ORT MatMul${fma ? `, ${((100 * g) / fma).toFixed(0)}% of FMA peak` : ''}; session build ${r.buildS.toFixed(1)} s; weights ${gib(r.weightBytes)}; peak RSS ${gib(r.peakRss)}, RSS after steps ${gib(r.steadyRss)}`,
    );
  }
  const ratio = median(q.times) / median(f.times);
  log(`  int8 / fp32 step time: ${ratio.toFixed(2)} (target ${unetTarget.label}) ${ratio <= unetTarget.max ? 'OK' : 'MISS'}; int8 peak RSS ${gib(q.peakRss)} (target ≤ 1.6 GiB) ${q.peakRss <= 1.6 * 2 ** 30 ? 'OK' : 'MISS'}`);
  if (fp) {
    const base = median(fp.times);
    log(`  against fp32 with plain upsamplers (today's fp32): int8 ${(median(q.times) / base).toFixed(2)} (target ${unetTarget.label}) ${median(q.times) / base <= unetTarget.max ? 'OK' : 'MISS'}, fp32 sub-pixel ${(median(f.times) / base).toFixed(3)}`);
    log(`  eps relative RMS fp32 sub-pixel vs plain: ${relativeRms(f32File(join(work, 'fp32-eps.bin')), f32File(join(work, 'fp32-plain-eps.bin'))).toExponential(2)}`);
  }
  log(`  eps relative RMS int8 vs fp32 at ${size}², t=500: ${relativeRms(f32File(join(work, 'int8-eps.bin')), f32File(join(work, 'fp32-eps.bin'))).toExponential(2)}`);
  const per: number[] = [];
  for (let i = 0; i < eulerSteps; i++) per.push(relativeRms(f32File(join(work, `int8-eps-${i}.bin`)), f32File(join(work, `traj-eps-${i}.bin`))));
  log(`\nEuler ${eulerSteps} steps at ${qSize}² batch 2 (normal schedule, fixed noise and context):`);
  log(`  per-step eps relative RMS (int8 on the fp32 trajectory): mean ${(per.reduce((s, v) => s + v, 0) / per.length).toExponential(2)}, max ${Math.max(...per).toExponential(2)}  [${per.map((v) => v.toFixed(3)).join(' ')}]`);
  log(`  final latent relative RMS (each on its own trajectory): ${relativeRms(f32File(join(work, 'int8-final.bin')), f32File(join(work, 'fp32-final.bin'))).toExponential(2)}`);
  if (vae) {
    const [tf, tq] = [median(vae.times.fp32!), median(vae.times.int8!)];
    log(`\nVAE decode 512² batch 1: fp32 ${tf.toFixed(2)} s, int8 ${tq.toFixed(2)} s, ratio ${(tq / tf).toFixed(2)}; image relative RMS ${vae.err.int8!.toExponential(2)}`);
    if (vae.times['fp32-plain']) {
      const [pf, pq] = [median(vae.times['fp32-plain']), median(vae.times['int8-plain']!)];
      log(`  plain upsamplers: fp32 ${pf.toFixed(2)} s (today's), int8 ${pq.toFixed(2)} s; sub-pixel fp32 ${(tf / pf).toFixed(2)} × today's, sub-pixel int8 ${(tq / pf).toFixed(2)} × today's (target ${vaeTarget.label}) ${tq / pf <= vaeTarget.max ? 'OK' : 'MISS'}`);
      log(`  image relative RMS vs today's fp32: fp32 sub-pixel ${vae.err['fp32-vs-plain']!.toExponential(2)}, int8 sub-pixel ${vae.err['int8-vs-plain']!.toExponential(2)}`);
    }
  }
}

// Children inherit the mask through their environment, never the flag.
const rerun = runUnderIsa(values.isa, log);
if (rerun !== undefined) process.exitCode = rerun;
else if (values.child === 'vae') await vaeChild(values.work!, !values['skip-plain']);
else if (values.child) await child(values.child as Precision, values.work!);
else await parent();
