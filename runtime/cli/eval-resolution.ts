import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureDemoModels } from '../models/synthetic/demo.js';
import { SHAPES_BASE, SHAPES_CHECKPOINT, SHAPES_RESADAPTER } from '../shapes/arch.js';
import { evalGridPng } from '../shapes/eval-grid.js';
import { ensureShapesModel, SHAPES_ASSET } from '../shapes/provision.js';
import { EVAL_METHODS } from '../shapes/eval-graph.js';
import { availableMethods, DEFAULT_EVAL_SIZES, evalSummary, formatEvalTable, runResolutionEval, type EvalOptions } from '../shapes/eval-run.js';
import { cliContext, type CliContext } from './run.js';
import { CliUsageError } from './workflow-io.js';


export const EVAL_HELP = `resflow eval-resolution [options]

Samples N images per (method, size) with fixed seeds and prompts from the Shapes scene stream, scores each
(exactly one object, object colour, shape, background colour) and prints a table method × size → % passing,
with UNet passes per step and seconds per image; writes a labelled grid PNG.
  --n N               samples per (method, size) (default 8)
  --sizes LIST        e.g. 64x64,128x128,128x256 (default: 64², 96², 128², 192², 256², 128×256, 256×128)
  --methods LIST      of ${EVAL_METHODS.map((m) => m.id).join(', ')} (default: every one this build has)
  --steps N           sampler steps (default 20)
  --cfg X             guidance scale (default 4)
  --sampler NAME      (default euler); --scheduler NAME (default normal)
  --model FILE        checkpoint (default ${SHAPES_CHECKPOINT}); --resadapter NAME (default ${SHAPES_RESADAPTER})
  --base-size PX      the side the model was trained at (default ${SHAPES_BASE}): MultiDiffusion's window
  --out DIR           where the grid PNG (and --json's file) go (default: <data dir>/output)
  --json              print the full results as JSON on stdout instead of the table
  --models DIR, --data DIR   as for 'resflow run'`;

export function parseSizes(text: string): Array<[number, number]> {
  return text.split(',').map((s) => {
    const m = /^\s*(\d+)\s*[x×]\s*(\d+)\s*$/.exec(s);
    if (!m) throw new CliUsageError(`--sizes: "${s}" is not WIDTHxHEIGHT`);
    const [w, h] = [Number(m[1]), Number(m[2])];
    if (w % 8 || h % 8 || w < 16 || h < 16) throw new CliUsageError(`--sizes: ${w}x${h} must be multiples of 8, at least 16`);
    return [w, h];
  });
}

function positiveNumber(name: string, v: string | undefined, fallback: number, integer = true): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || (integer && (!Number.isInteger(n) || n < 1))) throw new CliUsageError(`--${name}: "${v}" is not a valid ${integer ? 'positive integer' : 'number'}`);
  return n;
}

/** The evaluation's options from the command line, checked against what is installed. */
export function evalOptionsFromArgs(ctx: CliContext, values: Record<string, string | boolean | string[] | undefined>): EvalOptions {
  const str = (k: string) => values[k] as string | undefined;
  const checkpoint = str('model') ?? SHAPES_CHECKPOINT;
  if (checkpoint.includes('resflow-demo')) ensureDemoModels(ctx.env.folders.modelsDir);
  // The shipped Shapes weights are provisioned from assets/ when this checkout has them.
  if (checkpoint === SHAPES_CHECKPOINT && existsSync(SHAPES_ASSET)) ensureShapesModel(ctx.env.folders.modelsDir);
  if (!ctx.env.folders.list('checkpoints').includes(checkpoint)) throw new CliUsageError(`checkpoint "${checkpoint}" is not in ${ctx.env.folders.modelsDir}/checkpoints (or another models root); pass --model`);
  const resadapter = str('resadapter') ?? SHAPES_RESADAPTER;
  const hasAdapter = ctx.env.folders.list('resadapters').includes(resadapter);
  if (str('resadapter') && !hasAdapter) throw new CliUsageError(`ResAdapter "${resadapter}" is not in the resadapters folder`);
  const available = availableMethods(ctx.registry, hasAdapter);
  let methods = available;
  if (str('methods')) {
    methods = str('methods')!.split(',').map((id) => {
      const m = available.find((x) => x.id === id.trim());
      if (m) return m;
      const known = EVAL_METHODS.find((x) => x.id === id.trim());
      throw new CliUsageError(known ? `--methods: "${id}" needs ${known.needsResAdapter && !hasAdapter ? `a ResAdapter ("${resadapter}" is not installed)` : `node types ${known.requires.join(', ')}`}` : `--methods: unknown method "${id}" (have: ${EVAL_METHODS.map((x) => x.id).join(', ')})`);
    });
  }
  const baseSize = positiveNumber('base-size', str('base-size'), SHAPES_BASE);
  if (baseSize % 16) throw new CliUsageError('--base-size must be a multiple of 16');
  return {
    n: positiveNumber('n', str('n'), 8),
    sizes: str('sizes') ? parseSizes(str('sizes')!) : DEFAULT_EVAL_SIZES,
    methods,
    setup: { checkpoint, ...(hasAdapter ? { resadapter } : {}), baseSize },
    settings: {
      steps: positiveNumber('steps', str('steps'), 20),
      cfg: positiveNumber('cfg', str('cfg'), 4, false),
      sampler: str('sampler') ?? 'euler',
      scheduler: str('scheduler') ?? 'normal',
    },
  };
}

function writeAtomic(path: string, data: Buffer | string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

export async function evalResolutionCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      n: { type: 'string' },
      sizes: { type: 'string' },
      methods: { type: 'string' },
      steps: { type: 'string' },
      cfg: { type: 'string' },
      sampler: { type: 'string' },
      scheduler: { type: 'string' },
      model: { type: 'string' },
      resadapter: { type: 'string' },
      'base-size': { type: 'string' },
      out: { type: 'string' },
      models: { type: 'string', multiple: true },
      data: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(EVAL_HELP);
    return 0;
  }
  const ctx = cliContext(values);
  let opts: EvalOptions;
  try {
    opts = evalOptionsFromArgs(ctx, values);
  } catch (e) {
    if (e instanceof CliUsageError) {
      console.error(e.message);
      return 2;
    }
    throw e;
  }
  const report = await evaluateAndReport(ctx, opts, { json: values.json ?? false });
  return report.failed ? 1 : 0;
}

/** Runs the evaluation with progress on stderr, prints the table (or JSON) and writes the grid; shared with the demo. */
export async function evaluateAndReport(ctx: CliContext, opts: EvalOptions, out: { json: boolean; gridName?: string; title?: string; perCell?: number }): Promise<{ table: string; gridPath: string; failed: boolean }> {
  console.error(
    `eval-resolution: ${opts.setup.checkpoint}${opts.setup.resadapter ? ` + ${opts.setup.resadapter}` : ''}, N=${opts.n}, ${opts.settings.steps} steps ${opts.settings.sampler}/${opts.settings.scheduler}, cfg ${opts.settings.cfg}; ` +
      `methods ${opts.methods.map((m) => m.id).join(', ')}; sizes ${opts.sizes.map(([w, h]) => `${w}x${h}`).join(', ')}`,
  );
  const started = performance.now();
  const cells = await runResolutionEval(ctx, {
    ...opts,
    onSample: (cell, sample, done, total) => {
      const what = sample ? `${sample.score.pass ? 'pass' : 'FAIL'} "${sample.caption}"` : `error: ${cell.error}`;
      process.stderr.write(`  [${done}/${total}] ${cell.label} ${cell.width}x${cell.height} #${sample?.index ?? '-'} ${what}\n`);
    },
  });
  const table = formatEvalTable(cells);
  mkdirSync(ctx.env.outputDir, { recursive: true });
  const gridPath = join(ctx.env.outputDir, out.gridName ?? 'eval-resolution.png');
  writeAtomic(gridPath, await evalGridPng(cells, { ...(out.perCell ? { perCell: out.perCell } : {}), title: out.title ?? `${opts.setup.checkpoint}: first samples per method and size (bar: all checks pass)` }));
  if (out.json) console.log(JSON.stringify({ settings: { ...opts.setup, ...opts.settings, n: opts.n }, grid: gridPath, cells: evalSummary(cells) }, null, 1));
  else console.log(table);
  console.error(`grid: ${gridPath} (${((performance.now() - started) / 1000).toFixed(1)}s)`);
  const failed = cells.some((c) => c.error);
  if (failed) console.error('some cells failed to run: see the table');
  return { table, gridPath, failed };
}
