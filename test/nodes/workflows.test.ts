import { existsSync, readFileSync } from 'node:fs';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { Executor } from '../../runtime/executor/executor.js';
import { validatePrompt } from '../../runtime/executor/validate.js';
import { readWorkflowFromPng } from '../../runtime/workflow/png.js';
import { importWorkflow } from '../../runtime/workflow/import.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import { DEFAULT_WORKFLOW, exampleWorkflows } from '../../runtime/workflow/examples.js';
import { demoRuntime, loadWorkflowPrompt, shrink, workflowFiles, type TestRuntime } from './helpers.js';
import { join } from 'node:path';

async function run(rt: TestRuntime, prompt: ApiPrompt, executor = new Executor(), workflow?: unknown) {
  const v = await validatePrompt(prompt, rt.registry);
  if (!v.ok) throw new Error(`invalid: ${JSON.stringify(v.node_errors)} ${v.error.message}`);
  const opts = workflow ? { extraData: { extra_pnginfo: { workflow } } } : {};
  const result = await executor.run(v.graph, opts);
  if (result.status !== 'success') throw new Error(`run failed: ${JSON.stringify(result.error ?? result.interrupted)}`);
  return result;
}

function savedFiles(rt: TestRuntime, outputs: Record<string, Record<string, unknown[]>>): string[] {
  return Object.values(outputs).flatMap((ui) =>
    ((ui.images ?? []) as Array<{ filename: string; subfolder: string; type: string }>).map((i) => join(i.type === 'temp' ? rt.env.tempDir : rt.env.outputDir, i.subfolder, i.filename)),
  );
}

describe('shareable workflows run end-to-end on the demo model', () => {
  let rt: TestRuntime;
  beforeAll(async () => {
    rt = await demoRuntime();
  });

  it('workflows/ holds exactly the generated examples', () => {
    expect(workflowFiles()).toEqual(Object.keys(exampleWorkflows()).sort());
    expect(workflowFiles()).toContain(DEFAULT_WORKFLOW);
  });

  for (const file of workflowFiles()) {
    it(`${file} runs and saves real images`, async () => {
      const { prompt, workflow } = loadWorkflowPrompt(file, rt.registry);
      // 1024² stays 1024² (the point of ResAdapter); only the step count is cut for test time.
      const result = await run(rt, shrink(prompt, 2), new Executor(), workflow);
      const files = savedFiles(rt, result.outputs);
      expect(files.length).toBeGreaterThan(0);
      for (const f of files) {
        expect(existsSync(f)).toBe(true);
        const meta = await sharp(f).metadata();
        expect(meta.format).toBe('png');
        const stats = await sharp(f).stats();
        // A real render, not a blank canvas: pixel values vary.
        expect(stats.channels.some((c) => c.stdev > 1)).toBe(true);
      }
    });
  }

  it('txt2img sizes: the saved images have the requested size, base and ResAdapter side by side', async () => {
    const { prompt } = loadWorkflowPrompt('resadapter-txt2img-384x768.json', rt.registry);
    const result = await run(rt, shrink(prompt, 1));
    const files = savedFiles(rt, result.outputs);
    const base = files.find((f) => f.includes('/base_'))!;
    const ra = files.find((f) => f.includes('/resadapter_'))!;
    const grid = files.find((f) => f.includes('/grid_'))!;
    expect(await sharp(base).metadata()).toMatchObject({ width: 384, height: 768 });
    expect(await sharp(grid).metadata()).toMatchObject({ width: 384 * 2 + 8, height: 768 });
    // The adapter changes the render.
    const [a, b] = await Promise.all([sharp(base).raw().toBuffer(), sharp(ra).raw().toBuffer()]);
    expect(a.equals(b)).toBe(false);
  });

  it('the base branch of a side-by-side graph is bit-identical to a graph without the adapter', async () => {
    const { prompt } = loadWorkflowPrompt(DEFAULT_WORKFLOW, rt.registry);
    const both = shrink(prompt, 2, 128);
    const withAdapter = await run(rt, both);
    const baseOnly = structuredClone(both);
    for (const id of ['2', '3', '8', '10', '11', '12', '14']) delete baseOnly[id];
    const plain = await run(rt, baseOnly);
    const pick = (r: typeof plain) => savedFiles(rt, r.outputs).find((f) => f.includes('/base_'))!;
    const [a, b] = await Promise.all([sharp(pick(withAdapter)).raw().toBuffer(), sharp(pick(plain)).raw().toBuffer()]);
    expect(a.equals(b)).toBe(true);
  });

  it('PNG round trip: the saved PNG carries the prompt and the editor workflow, which load back to the same graph', async () => {
    const { prompt, workflow } = loadWorkflowPrompt(DEFAULT_WORKFLOW, rt.registry);
    const small = shrink(prompt, 1, 128);
    const result = await run(rt, small, new Executor(), workflow);
    const grid = savedFiles(rt, result.outputs).find((f) => f.includes('grid'))!;
    const embedded = readWorkflowFromPng(readFileSync(grid));
    expect(embedded.prompt).toEqual(small);
    expect(embedded.workflow).toEqual(workflow);
    const back = importWorkflow(embedded.workflow, rt.registry);
    if (!back.success) throw back.error;
    expect(back.data.prompt).toEqual(prompt);
  });
});

describe('cache: re-running executes only what changed', () => {
  let rt: TestRuntime;
  beforeAll(async () => {
    rt = await demoRuntime();
  });

  it('an unchanged re-run executes zero nodes; a new seed re-runs only sampler → decode → grid → save', async () => {
    const { prompt } = loadWorkflowPrompt(DEFAULT_WORKFLOW, rt.registry);
    const small = shrink(prompt, 2, 128);
    const executor = new Executor();
    const first = await run(rt, small, executor);
    expect(first.executed.length).toBe(Object.keys(small).length);
    const second = await run(rt, small, executor);
    expect(second.executed).toEqual([]);
    expect(second.cached.length).toBe(Object.keys(small).length);

    const reseeded = structuredClone(small);
    reseeded['8']!.inputs.seed = 7 as never;
    const third = await run(rt, reseeded, executor);
    // The ResAdapter sampler, its decode, its save, the grid and the grid's save.
    expect([...third.executed].sort()).toEqual(['10', '11', '12', '14', '8'].sort());

    // Dragging alpha re-runs ApplyResAdapter and downstream only; the checkpoint is not reloaded.
    const realpha = structuredClone(reseeded);
    realpha['3']!.inputs.alpha = 0.5 as never;
    const fourth = await run(rt, realpha, executor);
    expect(fourth.executed).not.toContain('1');
    expect(fourth.executed).toContain('3');
    expect(fourth.executed).not.toContain('7');
  });
});
