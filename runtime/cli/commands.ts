import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { validatePrompt } from '../executor/validate.js';
import { apiToEditor } from '../workflow/api-to-editor.js';
import { cliContext, type CliContext, ensureDemoIfReferenced, formatValidation, partialError } from './run.js';
import { suggest } from './suggest.js';
import { shapesDemo } from './shapes-demo.js';
import { applyOverrides, CliUsageError, InvalidWorkflowError, loadWorkflowFile } from './workflow-io.js';

const COMMON_OPTS = {
  models: { type: 'string', multiple: true },
  data: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function guard(fn: () => Promise<number>): Promise<number> {
  return fn().catch((e) => {
    if (e instanceof InvalidWorkflowError || e instanceof CliUsageError) {
      console.error(e.message);
      return 2;
    }
    throw e;
  });
}

export async function validateCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...COMMON_OPTS, set: { type: 'string', multiple: true } } });
  if (values.help || positionals.length !== 1) {
    console.log('resflow validate <workflow.json|.png> [--set n.input=value]... [--json]\nChecks a workflow without running it. Exit 0 valid, 2 invalid.');
    return values.help ? 0 : 2;
  }
  return guard(async () => {
    const ctx = cliContext(values);
    const wf = loadWorkflowFile(positionals[0]!, ctx.registry);
    const prompt = applyOverrides(wf.prompt, values.set ?? [], ctx.registry);
    await ensureDemoIfReferenced(prompt, ctx.env);
    const v = await validatePrompt(prompt, ctx.registry);
    // Any node error makes the workflow invalid here, even when other outputs could still run (`run --partial`).
    const clean = v.ok && Object.keys(v.node_errors).length === 0;
    const error = v.ok ? partialError(v.node_errors) : v.error;
    if (values.json) console.log(JSON.stringify(clean ? { ok: true, outputs: v.ok ? v.outputs : [], node_errors: {} } : { ok: false, error, node_errors: v.node_errors, ...(v.ok ? { runnable_outputs: v.outputs } : {}) }, null, 1));
    else if (clean && v.ok) console.log(`valid: ${Object.keys(prompt).length} nodes, outputs ${v.outputs.join(', ')}`);
    else console.error(formatValidation(error, v.node_errors, prompt));
    return clean ? 0 : 2;
  });
}

export async function nodesCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: COMMON_OPTS });
  if (values.help) {
    console.log('resflow nodes [NodeType] [--json]\nLists the node library, or describes one node (inputs, outputs).');
    return 0;
  }
  const ctx = cliContext(values);
  if (positionals.length) {
    const name = resolveNodeName(ctx.registry, positionals[0]!);
    if (!name) return 2;
    const info = await ctx.registry.nodeInfo(name);
    if (values.json) {
      console.log(JSON.stringify(info, null, 1));
      return 0;
    }
    console.log(`${info.name} — ${info.display_name} [${info.category}]${info.output_node ? ' (output node)' : ''}`);
    if (info.description) console.log(`  ${info.description}`);
    for (const [group, inputs] of Object.entries({ required: info.input.required, optional: info.input.optional ?? {} })) {
      for (const [k, [type, o]] of Object.entries(inputs)) {
        const t = Array.isArray(type) ? `one of ${type.slice(0, 8).join(' | ')}${type.length > 8 ? ' | …' : ''}` : type;
        const extra = o ? Object.entries(o).filter(([kk]) => ['default', 'min', 'max'].includes(kk)).map(([kk, vv]) => `${kk}=${vv}`).join(' ') : '';
        console.log(`  in  ${k.padEnd(22)} ${t}${group === 'optional' ? ' (optional)' : ''}${extra ? `  ${extra}` : ''}`);
      }
    }
    info.output.forEach((o, i) => console.log(`  out ${info.output_name[i]!.padEnd(22)} ${o}`));
    return 0;
  }
  const all = await ctx.registry.objectInfo();
  if (values.json) {
    console.log(JSON.stringify(all, null, 1));
    return 0;
  }
  const byCat = new Map<string, string[]>();
  for (const n of Object.values(all)) byCat.set(n.category, [...(byCat.get(n.category) ?? []), n.name]);
  for (const [cat, names] of [...byCat].sort()) console.log(`${cat}: ${names.sort().join(', ')}`);
  return 0;
}

/** Exact, then case-insensitive (class names, aliases, display names); otherwise an error with suggestions. */
function resolveNodeName(registry: CliContext['registry'], wanted: string): string | undefined {
  if (registry.has(wanted)) return wanted;
  const names = [...registry.names(), ...Object.keys(registry.aliases())];
  const byLower = new Map<string, string>();
  for (const n of names) byLower.set(n.toLowerCase(), n);
  for (const n of registry.names()) {
    const display = registry.get(n)!.displayName.toLowerCase();
    if (!byLower.has(display)) byLower.set(display, n);
  }
  const hit = byLower.get(wanted.toLowerCase()) ?? byLower.get(wanted.toLowerCase().replace(/[\s_-]+/g, ''));
  if (hit) return hit;
  const close = suggest(wanted, names, 5);
  console.error(`unknown node type "${wanted}"${close.length ? `; did you mean: ${close.join(', ')}?` : ''}\n(run 'resflow nodes' for the full list)`);
  return undefined;
}

export async function convertCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...COMMON_OPTS, to: { type: 'string' }, output: { type: 'string', short: 'o' } } });
  if (values.help || positionals.length !== 1 || (values.to && !['api', 'editor'].includes(values.to))) {
    console.log('resflow convert <workflow.json|.png> [--to api|editor] [-o out.json]\nConverts between the editor (litegraph) format and the API prompt format; without --to, to the other one.');
    return values.help ? 0 : 2;
  }
  return guard(async () => {
    const ctx = cliContext(values);
    const wf = loadWorkflowFile(positionals[0]!, ctx.registry);
    const to = values.to ?? (wf.workflow ? 'api' : 'editor');
    const out = to === 'api' ? wf.prompt : (wf.workflow ?? apiToEditor(wf.prompt, ctx.registry));
    const text = `${JSON.stringify(out, null, 1)}\n`;
    if (values.output) {
      const tmp = `${values.output}.tmp-${process.pid}`;
      writeFileSync(tmp, text);
      renameSync(tmp, values.output);
      console.error(`wrote ${to} format to ${values.output}`);
    } else process.stdout.write(text);
    return 0;
  });
}

export const DEMO_HELP = `resflow demo [--out DIR] [--data DIR] [--steps N] [--n N]

Renders ResFlow Shapes (assets/shapes, a model ResFlow trained itself at 128² only) base vs ResAdapter at 128²,
256², 64² and 256×128 on the same prompts and seeds (N per cell, default 4), scores every picture, prints the
table and writes a labelled grid (output/resflow-shapes-demo.png). The full evaluation: resflow eval-resolution.`;

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { ...COMMON_OPTS, out: { type: 'string' }, steps: { type: 'string' }, n: { type: 'string' } } });
  if (values.help) {
    console.log(DEMO_HELP);
    return 0;
  }
  const ctx = cliContext(values);
  return shapesDemo(ctx, { ...(values.n ? { n: Number(values.n) } : {}), ...(values.steps ? { steps: Number(values.steps) } : {}), json: values.json ?? false });
}

export function readJson(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8'));
}
