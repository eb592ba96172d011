import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createNodeRegistry } from '../nodes-api/node-set.js';
import { createRuntimeEnv, type RuntimeEnv } from '../nodes-api/env.js';
import type { NodeRegistry } from '../nodes-api/registry.js';
import { Executor, type RunResult } from '../executor/executor.js';
import type { NodeErrors, PromptError } from '../executor/errors.js';
import { validatePrompt } from '../executor/validate.js';
import { ensureDemoInput, ensureDemoModels, DEMO_CHECKPOINT } from '../models/synthetic/demo.js';
import { ensureShapesModel } from '../shapes/provision.js';
import { DEMO_DATASET, ensureDemoDataset } from '../training/demo-dataset.js';
import type { ApiPrompt } from '../workflow/api-schema.js';
import { ProgressPrinter } from './progress.js';
import { applyOverrides, CliUsageError, InvalidWorkflowError, loadWorkflowFile } from './workflow-io.js';

export const RUN_HELP = `resflow run <workflow.json|workflow.png> [options]

Runs a workflow (editor or API format, or a PNG with one embedded) and saves its outputs.
  --set <node>.<input>=<value>   override an input; <node> is an id, a title or a node type (repeatable)
  --out DIR                      output folder (default: <data dir>/output)
  --models DIR                   extra models root (repeatable; <data dir>/models is always searched)
  --data DIR                     data folder (default: RESFLOW_DATA_DIR or the current folder)
  --json                         print the result as JSON on stdout
  --partial                      when some nodes are invalid, still run the outputs that do not depend on them
Exit codes: 0 ok, 2 invalid workflow (any node error, unless --partial), 1 runtime error.`;

export interface CliContext {
  env: RuntimeEnv;
  registry: NodeRegistry;
}

export function cliContext(values: { data?: string; out?: string; models?: string[] }): CliContext {
  const opts: Parameters<typeof createRuntimeEnv>[0] = {};
  if (values.data) opts.dataDir = resolve(values.data);
  if (values.out) opts.outputDir = resolve(values.out);
  if (values.models) opts.modelRoots = values.models.map((m) => resolve(m));
  const env = createRuntimeEnv(opts);
  return { env, registry: createNodeRegistry(env) };
}

/** Workflows that name the embedded demo model get it generated on first use. */
export async function ensureDemoIfReferenced(prompt: ApiPrompt, env: RuntimeEnv): Promise<void> {
  if (JSON.stringify(prompt).includes('resflow-shapes')) ensureShapesModel(env.folders.modelsDir);
  if (!JSON.stringify(prompt).includes('resflow-demo')) return;
  ensureDemoModels(env.folders.modelsDir);
  await ensureDemoInput(env.inputDir);
  if (JSON.stringify(prompt).includes(DEMO_DATASET)) await ensureDemoDataset(env.inputDir);
}

export function formatValidation(error: PromptError, nodeErrors: NodeErrors, prompt: ApiPrompt): string {
  const lines = [`invalid workflow: ${error.message}${error.details ? ` (${error.details})` : ''}`];
  for (const [id, ne] of Object.entries(nodeErrors)) {
    const title = prompt[id]?._meta?.title;
    for (const e of ne.errors) {
      const input = e.extra_info?.input_name ? `.${String(e.extra_info.input_name)}` : '';
      lines.push(`  node ${id} (${ne.class_type}${title ? ` "${title}"` : ''})${input}: ${e.message}${e.details ? ` — ${e.details}` : ''}`);
    }
  }
  return lines.join('\n');
}

/** The prompt-level error for node errors that leave some outputs runnable. */
export function partialError(nodeErrors: NodeErrors, skipping = false): PromptError {
  const skipped = [...new Set(Object.values(nodeErrors).flatMap((e) => e.dependent_outputs))];
  const message = skipping ? `running the valid outputs; skipped: ${skipped.join(', ') || 'none'}` : 'Prompt outputs failed validation';
  return { type: 'prompt_outputs_failed_validation', message, details: '', extra_info: {} };
}

export interface RunOutcome {
  code: number;
  result?: RunResult;
  files: string[];
}

/** Validate and execute one prompt with terminal progress; shared by `run` and `demo`. */
export async function executePrompt(
  ctx: CliContext,
  prompt: ApiPrompt,
  opts: { workflow?: unknown; json?: boolean; executor?: Executor; quiet?: boolean; partial?: boolean } = {},
): Promise<RunOutcome> {
  await ensureDemoIfReferenced(prompt, ctx.env);
  const v = await validatePrompt(prompt, ctx.registry);
  if (!v.ok) {
    if (opts.json) console.log(JSON.stringify({ status: 'invalid', error: v.error, node_errors: v.node_errors }, null, 1));
    else console.error(formatValidation(v.error, v.node_errors, prompt));
    return { code: 2, files: [] };
  }
  const nodeErrors = Object.keys(v.node_errors).length > 0;
  if (nodeErrors && !opts.partial) {
    if (opts.json) console.log(JSON.stringify({ status: 'invalid', error: partialError(v.node_errors), node_errors: v.node_errors }, null, 1));
    else console.error(`${formatValidation(partialError(v.node_errors), v.node_errors, prompt)}\n(--partial runs the valid outputs anyway)`);
    return { code: 2, files: [] };
  }
  if (nodeErrors && !opts.json) console.error(formatValidation(partialError(v.node_errors, true), v.node_errors, prompt));
  // Node logs go to stderr with the progress: stdout carries only results (file paths or --json).
  const executor = opts.executor ?? new Executor({ log: (e) => console.error(`[${e.nodeType} #${e.nodeId}]`, ...e.args) });
  const printer = opts.quiet ? null : new ProgressPrinter(v.graph);
  const detach = printer?.attach(executor.events);
  const onSigint = () => executor.interrupt();
  process.once('SIGINT', onSigint);
  let result: RunResult;
  try {
    const extra = opts.workflow ? { extra_pnginfo: { workflow: opts.workflow } } : undefined;
    result = await executor.run(v.graph, extra ? { extraData: extra } : {});
  } finally {
    process.off('SIGINT', onSigint);
    detach?.();
  }
  const files: string[] = [];
  for (const ui of Object.values(result.outputs)) {
    for (const img of (ui.images ?? []) as Array<{ filename: string; subfolder: string; type: string }>) {
      const base = img.type === 'temp' ? ctx.env.tempDir : ctx.env.outputDir;
      files.push(resolve(base, img.subfolder, img.filename));
    }
  }
  if (opts.json) console.log(JSON.stringify({ ...result, files, ...(nodeErrors ? { node_errors: v.node_errors } : {}) }, null, 1));
  else {
    const ms = Object.values(result.timings).reduce((a, b) => a + b, 0);
    console.error(`${result.status}: ${result.executed.length} node(s) executed, ${result.cached.length} cached, ${(ms / 1000).toFixed(1)}s of node time`);
    for (const f of files) console.log(f);
  }
  return { code: result.status === 'success' ? 0 : 1, result, files };
}

export async function runCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      set: { type: 'string', multiple: true },
      out: { type: 'string' },
      models: { type: 'string', multiple: true },
      data: { type: 'string' },
      json: { type: 'boolean' },
      quiet: { type: 'boolean' },
      partial: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || positionals.length !== 1) {
    console.log(RUN_HELP);
    return values.help ? 0 : 2;
  }
  const ctx = cliContext(values);
  try {
    const wf = loadWorkflowFile(positionals[0]!, ctx.registry);
    for (const w of wf.warnings) console.error(`warning: ${w}`);
    const prompt = applyOverrides(wf.prompt, values.set ?? [], ctx.registry);
    const opts: Parameters<typeof executePrompt>[2] = { json: values.json ?? false, quiet: values.quiet ?? false, partial: values.partial ?? false };
    if (wf.workflow) opts.workflow = wf.workflow;
    return (await executePrompt(ctx, prompt, opts)).code;
  } catch (e) {
    if (e instanceof InvalidWorkflowError || e instanceof CliUsageError) {
      console.error(e.message);
      return 2;
    }
    throw e;
  }
}

export { DEMO_CHECKPOINT };
