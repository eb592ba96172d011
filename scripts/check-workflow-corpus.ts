/**
 * How many shared ComfyUI workflows ResFlow opens and validates: every PNG / JSON in a folder (e.g. ComfyUI's
 * own example images), both the editor workflow and the API prompt they embed, with every model name pointed
 * at a local file (demo models: SDXL-looking names at the SDXL demo). Prints one line per file and a total;
 * `--run` also executes each valid prompt with at most 2 sampling steps.
 *
 *   npx tsx scripts/check-workflow-corpus.ts <folder> [--run] [--json out.json]
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createCoreRegistry } from '../nodes/core/index.js';
import { createRuntimeEnv } from '../nodes/env.js';
import type { NodeRegistry } from '../nodes/registry.js';
import { Executor } from '../runtime/executor/executor.js';
import { validatePrompt } from '../runtime/executor/validate.js';
import { DEMO_CHECKPOINT, ensureDemoInput, ensureDemoModels } from '../runtime/models/synthetic/demo.js';
import type { ApiPrompt } from '../runtime/workflow/api-schema.js';
import { importWorkflow } from '../runtime/workflow/import.js';
import { readWorkflowFromPng } from '../runtime/workflow/png.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { run: { type: 'boolean' }, json: { type: 'string' } } });
if (positionals.length !== 1) {
  console.error('usage: check-workflow-corpus.ts <folder> [--run] [--json out.json]');
  process.exit(2);
}

const dataDir = mkdtempSync(join(tmpdir(), 'resflow-corpus-'));
const env = createRuntimeEnv({ dataDir });
ensureDemoModels(env.folders.modelsDir);
await ensureDemoInput(env.inputDir);
// One local file of every kind a shared workflow may name: demo files, plus small real-layout ones from the shared data.
const sharedModels = resolve(fileURLToPath(new URL('..', import.meta.url)), '../shared');
const stock: Array<[string, string]> = [
  ['vae', join(env.folders.modelsDir, 'checkpoints', DEMO_CHECKPOINT)],
  ['upscale_models', join(sharedModels, 'conformance-nodes/models/esrgan-old-x4.safetensors')],
  ['hypernetworks', join(sharedModels, 'conformance-nodes/models/hypernetwork-a.pt')],
];
for (const [kind, file] of stock) {
  if (!existsSync(file)) continue;
  mkdirSync(join(env.folders.modelsDir, kind), { recursive: true });
  copyFileSync(file, join(env.folders.modelsDir, kind, basename(file)));
}
const registry = createCoreRegistry(env);

/** Points every file-name combo at an existing choice, the way a user would pick their own files. */
async function pointAtLocalFiles(prompt: ApiPrompt, reg: NodeRegistry): Promise<ApiPrompt> {
  const out = structuredClone(prompt);
  for (const node of Object.values(out)) {
    const def = reg.get(node.class_type);
    if (!def) continue;
    const info = await reg.nodeInfo(node.class_type);
    const specs = { ...info.input.required, ...(info.input.optional ?? {}) } as Record<string, unknown[]>;
    for (const input of def.inputs) {
      const value = node.inputs[input.name];
      const wire = specs[input.name];
      if (input.spec.type !== 'COMBO' || typeof value !== 'string' || !Array.isArray(wire?.[0])) continue;
      const choices = (wire[0] as unknown[]).map(String);
      if (choices.includes(value)) continue;
      const isFile = /\.(safetensors|ckpt|pt|pth|bin|png|jpe?g|webp)$/i.test(value) || /name$|^image$/.test(input.name);
      if (!isFile || choices.length === 0) continue;
      const wantXl = /xl|refiner/i.test(value);
      const pick = choices.find((c) => /sdxl/i.test(c) === wantXl) ?? choices[0]!;
      node.inputs[input.name] = pick;
    }
  }
  return out;
}

function shrink(prompt: ApiPrompt): ApiPrompt {
  const out = structuredClone(prompt);
  for (const node of Object.values(out)) {
    // Sizes stay: area and mask conditioning are laid out in pixels of the original canvas.
    if (typeof node.inputs.steps === 'number') node.inputs.steps = Math.min(node.inputs.steps, 2);
  }
  return out;
}

interface Row {
  file: string;
  form: 'editor' | 'api';
  ok: boolean;
  ran?: boolean;
  errors: string[];
}

async function check(file: string, form: Row['form'], source: unknown): Promise<Row> {
  const imported = importWorkflow(source, registry);
  if (!imported.success) return { file, form, ok: false, errors: [imported.error.message.split('\n')[0]!] };
  const prompt = await pointAtLocalFiles(imported.data.prompt, registry);
  const v = await validatePrompt(prompt, registry);
  const errors = Object.entries(v.node_errors).flatMap(([id, e]) => e.errors.map((x) => `${id} ${e.class_type}: ${x.message} ${x.details}`));
  if (!v.ok) errors.unshift(`${v.error.message}: ${v.error.details}`);
  const row: Row = { file, form, ok: v.ok && errors.length === 0, errors };
  if (row.ok && values.run && v.ok) {
    const again = await validatePrompt(shrink(prompt), registry);
    if (again.ok) {
      const result = await new Executor().run(again.graph);
      row.ran = result.status === 'success';
      if (!row.ran) row.errors.push(`run: ${result.error?.exception_message ?? result.status}`);
    }
  }
  return row;
}

const rows: Row[] = [];
for (const name of readdirSync(positionals[0]!).sort()) {
  const path = join(positionals[0]!, name);
  let embedded: { workflow?: unknown; prompt?: unknown } = {};
  if (name.endsWith('.png')) embedded = readWorkflowFromPng(readFileSync(path));
  else if (name.endsWith('.json')) embedded = { workflow: JSON.parse(readFileSync(path, 'utf8')) };
  else continue;
  for (const [form, source] of [['editor', embedded.workflow], ['api', embedded.prompt]] as const) {
    if (source === undefined) continue;
    const row = await check(name, form, source);
    rows.push(row);
    console.log(`${row.ok ? 'ok  ' : 'FAIL'} ${form.padEnd(6)} ${name}${row.ran === undefined ? '' : row.ran ? ' (ran)' : ' (run failed)'}${row.errors.length ? `\n       ${row.errors.slice(0, 3).join('\n       ')}` : ''}`);
  }
}
for (const form of ['editor', 'api'] as const) {
  const of = rows.filter((r) => r.form === form);
  console.log(`${form}: ${of.filter((r) => r.ok).length} of ${of.length} validate${values.run ? `, ${of.filter((r) => r.ran).length} run` : ''}`);
}
if (values.json) writeFileSync(values.json, JSON.stringify(rows, null, 1));
