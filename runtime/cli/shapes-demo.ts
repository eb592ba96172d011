import { SHAPES_BASE, SHAPES_CHECKPOINT, SHAPES_RESADAPTER } from '../shapes/arch.js';
import { EVAL_METHODS } from '../shapes/eval-graph.js';
import { ensureShapesModel } from '../shapes/provision.js';
import type { EvalOptions } from '../shapes/eval-run.js';
import { evaluateAndReport } from './eval-resolution.js';
import type { CliContext } from './run.js';

/** The demo's sizes: the base for reference, then below, above and off the base aspect ratio. */
export const SHAPES_DEMO_SIZES: ReadonlyArray<readonly [number, number]> = [
  [128, 128],
  [256, 256],
  [64, 64],
  [256, 128],
];

/**
 * `npm run demo` with ResFlow Shapes: base vs ResAdapter on the same prompts and seeds at the base size and
 * three sizes the base model was never trained at, scored, with the grid written next to the outputs.
 */
export async function shapesDemo(ctx: CliContext, o: { n?: number; steps?: number; json?: boolean }): Promise<number> {
  const paths = ensureShapesModel(ctx.env.folders.modelsDir);
  // The LoRA-only ablation rides along: on the shipped weights it is the part that removes duplicates (docs/resolution-eval.md).
  const ids = paths.resadapter ? ['base', 'resadapter', 'lora'] : ['base'];
  const opts: EvalOptions = {
    n: o.n ?? 4,
    sizes: SHAPES_DEMO_SIZES,
    methods: EVAL_METHODS.filter((m) => ids.includes(m.id)),
    setup: { checkpoint: SHAPES_CHECKPOINT, ...(paths.resadapter ? { resadapter: SHAPES_RESADAPTER } : {}), baseSize: SHAPES_BASE },
    settings: { steps: o.steps ?? 20, cfg: 4, sampler: 'euler', scheduler: 'normal' },
  };
  console.error(`ResFlow demo: the Shapes model (trained by ResFlow at ${SHAPES_BASE}×${SHAPES_BASE} only), models under ${ctx.env.folders.modelsDir}`);
  const r = await evaluateAndReport(ctx, opts, {
    json: o.json ?? false,
    gridName: 'resflow-shapes-demo.png',
    perCell: opts.n,
    title: `ResFlow Shapes, ${paths.resadapter ? 'base vs ResAdapter (and its LoRA part alone)' : 'base model'}: same prompts and seeds in every cell (bar: all four checks pass)`,
  });
  if (!o.json) {
    console.error(
      [
        '',
        `Each row is a method, each column a size; ${SHAPES_BASE}×${SHAPES_BASE} is the only size the base model was trained at.`,
        paths.resadapter ? '' : 'No ResAdapter is shipped for this model yet, so only the base model is shown.',
        'The full evaluation (more sizes, MultiDiffusion and the ablations): resflow eval-resolution --n 32',
      ].filter(Boolean).join('\n'),
    );
  }
  return r.failed ? 1 : 0;
}
