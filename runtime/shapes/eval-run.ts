/**
 * The resolution evaluation: N fixed (scene, seed) pairs sampled per (method, size) through the executor,
 * each picture scored against its prompt. Scenes come from a fixed stream, so every method and size sees the
 * same prompts with the same noise seeds and the table compares like with like.
 */
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import sharp from 'sharp';
import type { NodeRegistry } from '../nodes-api/registry.js';
import type { RuntimeEnv } from '../nodes-api/env.js';
import { Executor } from '../executor/executor.js';
import { validatePrompt } from '../executor/validate.js';
import { unetUsage } from '../models/unet/model.js';
import { sampleScene, sceneCaption, type ShapeScene } from './dataset.js';
import { evalPrompt, EVAL_METHODS, type EvalMethod, type EvalSetup, type SampleSettings } from './eval-graph.js';
import { CHECK_NAMES, scoreScene, type CheckName, type RgbImage, type SceneScore } from './score.js';

/** The scene stream of the evaluation: not the training stream, so no prompt is a memorised picture. */
export const EVAL_SCENE_SEED = 90210;

export const DEFAULT_EVAL_SIZES: ReadonlyArray<readonly [number, number]> = [
  [64, 64],
  [96, 96],
  [128, 128],
  [192, 192],
  [256, 256],
  [128, 256],
  [256, 128],
];

export interface EvalSample {
  index: number;
  seed: number;
  scene: ShapeScene;
  caption: string;
  image: RgbImage;
  score: SceneScore;
}

export interface EvalCell {
  method: string;
  label: string;
  width: number;
  height: number;
  samples: EvalSample[];
  /** Samples passing each check, and all four. */
  passed: Record<CheckName | 'all', number>;
  /** Latent images through the UNet per sampler step and guidance side (1 for a plain model). */
  unetPassesPerStep: number;
  /** Median sampler + decoder wall time per image. */
  secondsPerImage: number;
  error?: string;
}

export interface EvalOptions {
  n: number;
  sizes: ReadonlyArray<readonly [number, number]>;
  methods: readonly EvalMethod[];
  setup: EvalSetup;
  settings: SampleSettings;
  /** Called after every sample (for progress output). */
  onSample?: (cell: EvalCell, sample: EvalSample | undefined, done: number, total: number) => void;
}

/** The methods whose nodes this registry has (and that have an adapter to apply, when they need one). */
export function availableMethods(registry: NodeRegistry, hasResAdapter: boolean): EvalMethod[] {
  return EVAL_METHODS.filter((m) => m.requires.every((t) => registry.has(t)) && (hasResAdapter || !m.needsResAdapter));
}

/** Widget defaults from the node's object_info, for the inputs a method leaves to the node. */
async function defaultsTable(registry: NodeRegistry, methods: readonly EvalMethod[], setup: EvalSetup): Promise<Map<string, Record<string, unknown>>> {
  const table = new Map<string, Record<string, unknown>>();
  for (const m of methods) {
    for (const p of m.patches(setup, setup.baseSize, setup.baseSize)) {
      if (table.has(p.classType)) continue;
      const info = await registry.nodeInfo(p.classType);
      const out: Record<string, unknown> = {};
      for (const [name, [type, opts]] of Object.entries({ ...info.input.required, ...(info.input.optional ?? {}) })) {
        const o = (opts ?? {}) as { default?: unknown };
        if (o.default !== undefined) out[name] = o.default;
        else if (Array.isArray(type) && type.length) out[name] = type[0];
      }
      table.set(p.classType, out);
    }
  }
  return table;
}

async function readRgb(path: string): Promise<RgbImage> {
  const { data, info } = await sharp(path).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
}

function median(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Runs every (method, size) cell; one executor throughout, so models load once and stay cached. */
export async function runResolutionEval(ctx: { env: RuntimeEnv; registry: NodeRegistry }, opts: EvalOptions, executor = new Executor({ log: () => {} })): Promise<EvalCell[]> {
  const defaults = await defaultsTable(ctx.registry, opts.methods, opts.setup);
  const defaultsOf = (t: string) => defaults.get(t) ?? {};
  const scenes = Array.from({ length: opts.n }, (_, i) => sampleScene(EVAL_SCENE_SEED, i));
  const cells: EvalCell[] = [];
  const total = opts.methods.length * opts.sizes.length * opts.n;
  let done = 0;
  const sides = Math.abs(opts.settings.cfg - 1) <= 1e-9 ? 1 : 2;
  for (const method of opts.methods) {
    for (const [width, height] of opts.sizes) {
      const cell: EvalCell = { method: method.id, label: method.label, width, height, samples: [], passed: { oneObject: 0, objectColour: 0, shape: 0, background: 0, all: 0 }, unetPassesPerStep: NaN, secondsPerImage: NaN };
      cells.push(cell);
      const seconds: number[] = [];
      let items = 0;
      for (let i = 0; i < opts.n; i++) {
        const scene = scenes[i]!;
        const caption = sceneCaption(scene);
        const seed = i;
        const prompt = evalPrompt(method, opts.setup, { width, height }, { seed, caption }, opts.settings, defaultsOf);
        const v = await validatePrompt(prompt, ctx.registry);
        if (!v.ok) {
          cell.error = `invalid graph: ${v.error.message} ${JSON.stringify(v.node_errors)}`;
          break;
        }
        const before = unetUsage.items;
        const result = await executor.run(v.graph);
        if (result.status !== 'success') {
          cell.error = result.error ? `${result.error.node_type}: ${result.error.exception_message}` : result.status;
          break;
        }
        items += unetUsage.items - before;
        seconds.push(((result.timings.sampler ?? 0) + (result.timings.decode ?? 0)) / 1000);
        const img = (result.outputs.preview?.images ?? [])[0] as { filename: string; subfolder: string } | undefined;
        if (!img) throw new Error('the evaluation graph saved no image');
        const path = resolve(ctx.env.tempDir, img.subfolder, img.filename);
        const image = await readRgb(path);
        rmSync(path, { force: true });
        const score = scoreScene(image, scene);
        const sample: EvalSample = { index: i, seed, scene, caption, image, score };
        cell.samples.push(sample);
        for (const k of CHECK_NAMES) if (score.checks[k]) cell.passed[k]++;
        if (score.pass) cell.passed.all++;
        opts.onSample?.(cell, sample, ++done, total);
      }
      if (cell.error) {
        done += opts.n - cell.samples.length;
        opts.onSample?.(cell, undefined, done, total);
      }
      if (cell.samples.length) {
        cell.unetPassesPerStep = items / cell.samples.length / opts.settings.steps / sides;
        cell.secondsPerImage = median(seconds);
      }
    }
  }
  return cells;
}

const pct = (k: number, n: number) => (n ? `${Math.round((100 * k) / n)}%` : '–');

/** Markdown table: one row per (method, size), % of samples passing each check. */
export function formatEvalTable(cells: readonly EvalCell[]): string {
  const head = ['method', 'size', 'N', 'one object', 'object colour', 'shape', 'background', 'all four', 'UNet passes / step', 's / image'];
  const rows = cells.map((c) => {
    const n = c.samples.length;
    if (c.error && !n) return [c.label, `${c.width}×${c.height}`, '0', `error: ${c.error.replace(/\|/g, '/').slice(0, 120)}`, '', '', '', '', '', ''];
    return [
      c.label,
      `${c.width}×${c.height}`,
      String(n),
      pct(c.passed.oneObject, n),
      pct(c.passed.objectColour, n),
      pct(c.passed.shape, n),
      pct(c.passed.background, n),
      pct(c.passed.all, n),
      Number.isFinite(c.unetPassesPerStep) ? c.unetPassesPerStep.toFixed(c.unetPassesPerStep % 1 ? 2 : 0) : '–',
      Number.isFinite(c.secondsPerImage) ? c.secondsPerImage.toFixed(2) : '–',
    ];
  });
  const line = (r: string[]) => `| ${r.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

/** The table as plain data, for --json. */
export function evalSummary(cells: readonly EvalCell[]): Array<Record<string, unknown>> {
  return cells.map((c) => ({
    method: c.method,
    label: c.label,
    width: c.width,
    height: c.height,
    n: c.samples.length,
    passed: c.passed,
    unetPassesPerStep: c.unetPassesPerStep,
    secondsPerImage: c.secondsPerImage,
    ...(c.error ? { error: c.error } : {}),
    samples: c.samples.map((s) => ({ seed: s.seed, caption: s.caption, checks: s.score.checks, background: s.score.background, objects: s.score.objects.map((o) => ({ colour: o.colour, shape: o.shape, area: o.area })) })),
  }));
}
