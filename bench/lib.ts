import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SD15_UNET } from '../runtime/adapters/arch-tables.js';
import { GraphBuilder } from '../runtime/graph/builder.js';
import { compileGraph } from '../runtime/graph/session.js';
import { SeededRandom, writeSyntheticCheckpoint } from '../runtime/models/synthetic/generate.js';
import { SD15_CLIP, SD15_VAE, sd1CheckpointKeyShapes } from '../runtime/models/synthetic/tables.js';

/** Shared bench plumbing: the full-size random checkpoint, medians, peak RSS, an idle check. */

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const BENCH_CACHE = join(ROOT, '.cache', 'bench');

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export const peakRssBytes = (): number => process.resourceUsage().maxRSS * 1024;
export const gib = (b: number): string => `${(b / 2 ** 30).toFixed(2)} GiB`;

/** Full-size SD1.5 in the real single-file layout, F16, random weights (seed 1); written once (~2 GiB). */
export function ensureSd15Checkpoint(log: (s: string) => void = console.log): string {
  const path = join(BENCH_CACHE, 'sd15-synthetic-f16.safetensors');
  if (!existsSync(path)) {
    mkdirSync(BENCH_CACHE, { recursive: true });
    log(`writing ${path} (full-size SD1.5 layout, F16, seed 1) ...`);
    const t0 = performance.now();
    writeSyntheticCheckpoint(path, sd1CheckpointKeyShapes({ unet: SD15_UNET, vae: SD15_VAE, clip: SD15_CLIP }), { dtype: 'F16', seed: 1 });
    log(`  ${((performance.now() - t0) / 1000).toFixed(1)} s, ${gib(statSync(path).size)}`);
  }
  return path;
}

/** Benchmarks on a busy machine lie: say so up front (load average vs core count). */
export function reportLoad(log: (s: string) => void = console.log): void {
  const [one] = loadavg();
  log(`machine load (1 min): ${one!.toFixed(2)}${one! > 0.5 ? '  — NOT idle: timings below are pessimistic' : ' (idle)'}`);
}

export async function timeIt<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await fn();
  return [r, performance.now() - t0];
}

/** Full-size SDXL base in the real single-file layout (UNet, VAE, CLIP-L, OpenCLIP bigG), F16, written once (~7 GiB). */
export async function ensureSdxlCheckpoint(log: (s: string) => void = console.log): Promise<string> {
  const path = join(BENCH_CACHE, 'sdxl-synthetic-f16.safetensors');
  if (!existsSync(path)) {
    const { SDXL_UNET } = await import('../runtime/adapters/arch-tables.js');
    const { sdxlCheckpointKeyShapes } = await import('../runtime/models/synthetic/demo-sdxl.js');
    mkdirSync(BENCH_CACHE, { recursive: true });
    log(`writing ${path} (full-size SDXL layout, F16, seed 1) ...`);
    const t0 = performance.now();
    const table = sdxlCheckpointKeyShapes({
      unet: SDXL_UNET,
      vae: SD15_VAE,
      clipL: SD15_CLIP,
      clipG: { hidden: 1280, layers: 32, intermediate: 5120, vocab: 49408, positions: 77, projection: 1280 },
    });
    writeSyntheticCheckpoint(path, table, { dtype: 'F16', seed: 1 });
    log(`  ${((performance.now() - t0) / 1000).toFixed(1)} s, ${gib(statSync(path).size)}`);
  }
  return path;
}

/** Extensions bench/cpuid-mask.c hides (AVX-512 incl. its VNNI and BF16, AVX-VNNI, AMX). */
const MASKED_FLAGS = new Set(['avx512f', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'amx_int8', 'amx_bf16']);
const ISA_MASK_ENV = 'RESFLOW_BENCH_ISA';

/** Whether this process runs under bench/cpuid-mask.c (ONNX Runtime sees an AVX2-only CPU). */
export function isaMasked(): boolean {
  return process.env[ISA_MASK_ENV] === 'avx2' && (process.env.LD_PRELOAD ?? '').includes('cpuid-mask');
}

/**
 * Reruns this bench as on an AVX2-only machine: builds bench/cpuid-mask.c and re-executes the same command with it
 * preloaded (children inherit it), so ONNX Runtime's kernels dispatch on a CPUID without AVX-512, VNNI or AMX. The
 * hardware stays this CPU: its AVX2 kernels, its caches and clocks. Returns the child's exit status, or undefined
 * when already masked (the caller goes on).
 */
function rerunMaskedToAvx2(log: (s: string) => void): number | undefined {
  if (isaMasked()) return undefined;
  const dir = join(BENCH_CACHE, 'cpuid-mask');
  const lib = join(dir, 'cpuid-mask.so');
  const src = join(ROOT, 'bench', 'cpuid-mask.c');
  if (!existsSync(lib) || statSync(lib).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(dir, { recursive: true });
    execFileSync('cc', ['-O2', '-shared', '-fPIC', '-o', lib, src, '-ldl'], { stdio: 'inherit' });
  }
  log(`rerunning with ${lib} preloaded: ONNX Runtime sees no AVX-512, VNNI or AMX`);
  const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, [ISA_MASK_ENV]: 'avx2', LD_PRELOAD: [lib, process.env.LD_PRELOAD].filter(Boolean).join(' ') },
  });
  if (r.status === 97) log('cpuid-mask: this machine has no CPUID faulting (arch_prctl ARCH_SET_CPUID); --isa avx2 cannot run here');
  return r.status ?? 1;
}

/**
 * A bench's `--isa` flag: undefined (flag absent, or this process is the masked rerun) means carry on here; a number
 * is the exit status of the rerun with ONNX Runtime seeing an AVX2-only CPU.
 */
export function runUnderIsa(isa: string | undefined, log: (s: string) => void): number | undefined {
  if (isa === undefined) return undefined;
  if (isa !== 'avx2') throw new Error(`--isa: only 'avx2' can be emulated, not '${isa}'`);
  return rerunMaskedToAvx2(log);
}

/** The CPU's SIMD and matrix extensions that matter to ORT's kernels, read from /proc/cpuinfo (Linux). */
export function cpuIsa(): string {
  let flags = '';
  let model = '';
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    flags = /^flags\s*:\s*(.*)$/m.exec(info)?.[1] ?? '';
    model = /^model name\s*:\s*(.*)$/m.exec(info)?.[1] ?? '';
  } catch {
    return `${process.arch} (no /proc/cpuinfo)`;
  }
  const has = (f: string) => flags.split(' ').includes(f);
  const parts = ['avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'amx_int8', 'amx_bf16'].filter(has);
  if (isaMasked()) {
    const hidden = parts.filter((f) => MASKED_FLAGS.has(f));
    return `${model.trim()} [${parts.filter((f) => !MASKED_FLAGS.has(f)).join(' ') || 'no AVX2'}] as ONNX Runtime sees it (${hidden.join(' ') || 'nothing'} hidden by bench/cpuid-mask.c)`;
  }
  return `${model.trim()} [${parts.join(' ') || 'no AVX2'}]`;
}

/**
 * The machine's fp32 FMA peak in GFLOP/s: a tiny C kernel (independent FMA chains at the widest vector the
 * compiler targets with -march=native) built with the system's cc and run on `threads` threads. Undefined
 * when no C compiler is installed.
 */
export function fmaPeakGflops(threads: number): number | undefined {
  const dir = join(BENCH_CACHE, 'fma-peak');
  // Under the AVX2 mask the peak is that of 256-bit FMAs, the widest the masked kernels use.
  const exe = join(dir, isaMasked() ? 'fma-peak-avx2' : 'fma-peak');
  try {
    if (!existsSync(exe)) {
      mkdirSync(dir, { recursive: true });
      const arch = isaMasked() ? ['-mavx2', '-mfma'] : ['-march=native'];
      const { LD_PRELOAD: _, ...env } = process.env; // the compiler itself runs unmasked
      execFileSync('cc', ['-O2', ...arch, '-pthread', '-o', exe, join(ROOT, 'bench', 'fma-peak.c')], { stdio: 'pipe', env });
    }
    const out = execFileSync(exe, [String(threads)], { encoding: 'utf8' });
    return Number(/GFLOPS\s+([\d.]+)/.exec(out)?.[1]);
  } catch {
    return undefined;
  }
}

/** ORT's own fp32 dense throughput here (2048³ MatMul, median of 5): the same-run yardstick for our graphs. */
export async function ortMatmulYardstick(): Promise<{ ms: number; gflops: number }> {
  const mm = new GraphBuilder();
  const a = mm.input('a', 'float32', [2048, 2048]);
  mm.output('c', mm.matmul(a, a));
  const session = await compileGraph(mm.graph);
  const A = { data: new SeededRandom(11).fillNormal(new Float32Array(2048 * 2048), 0, 1), dims: [2048, 2048] };
  await session.run({ a: A });
  const times: number[] = [];
  for (let i = 0; i < 5; i++) times.push((await timeIt(() => session.run({ a: A })))[1]);
  const ms = median(times);
  return { ms, gflops: (2 * 2048 ** 3) / (ms / 1000) / 1e9 };
}
