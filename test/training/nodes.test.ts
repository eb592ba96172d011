/**
 * The training nodes through the executor: the example workflow's dataset → train → save → preview chain,
 * a live loss chart while training, an interrupt that keeps its checkpoint and a re-run that resumes to the
 * same adapter as an uninterrupted run, and dataset errors surfacing as node errors.
 */
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCoreRegistry } from '../../nodes/core/index.js';
import { createRuntimeEnv, type RuntimeEnv } from '../../nodes/env.js';
import type { NodeRegistry } from '../../nodes/registry.js';
import { Executor } from '../../runtime/executor/executor.js';
import { validatePrompt } from '../../runtime/executor/validate.js';
import { ensureDemoModels } from '../../runtime/models/synthetic/demo.js';
import { ensureShapesModel } from '../../runtime/shapes/provision.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import { STATE_FILE } from '../../runtime/training/state.js';
import { trainResAdapterWorkflow } from '../../runtime/training/workflow.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';

function small(runName: string, adapterName: string): ApiPrompt {
  const p = structuredClone(trainResAdapterWorkflow());
  Object.assign(p['3']!.inputs, { steps: 4, batch_size: 2, micro_batch: 1, checkpoint_every: 2, run_name: runName });
  p['4']!.inputs.name = adapterName as never;
  for (const node of Object.values(p)) if (node.class_type === 'KSampler') node.inputs.steps = 1 as never;
  return p;
}

describe('training nodes', () => {
  let env: RuntimeEnv;
  let registry: NodeRegistry;

  beforeAll(() => {
    env = createRuntimeEnv({ dataDir: mkdtempSync(join(tmpdir(), 'resflow-train-nodes-')) });
    ensureDemoModels(env.folders.modelsDir);
    ensureShapesModel(env.folders.modelsDir);
    registry = createCoreRegistry(env);
  });

  async function run(prompt: ApiPrompt, executor = new Executor({ log: () => {} })) {
    const v = await validatePrompt(prompt, registry);
    if (!v.ok) throw new Error(JSON.stringify(v.node_errors));
    return executor.run(v.graph);
  }

  it('an interrupted run keeps its checkpoint and resumes to the adapter an uninterrupted run saves', async () => {
    const executor = new Executor({ log: () => {} });
    const previews: Uint8Array[] = [];
    executor.on('preview_image', (d) => d.node === '3' && previews.push(d.image.data));
    executor.on('progress', (d) => d.node === '3' && d.value === 2 && executor.interrupt());
    const cut = await run(small('resume-me', 'resumed'), executor);
    expect(cut.status).toBe('interrupted');
    expect(cut.interrupted?.node_id).toBe('3');
    const state = SafetensorsFile.open(join(env.outputDir, 'training', 'resume-me', STATE_FILE));
    expect(JSON.parse(state.metadata['resflow.training.state']!).step).toBe(2);
    // The live loss chart went out as the node's preview.
    expect(previews.length).toBeGreaterThan(0);
    expect(Buffer.from(previews[0]!).subarray(1, 4).toString()).toBe('PNG');

    const resumed = await run(small('resume-me', 'resumed'));
    expect(resumed.status).toBe('success');
    expect(String(resumed.outputs['3']!.text![0])).toMatch(/^4 step\(s\) \(resumed at 2\)/);
    const straight = await run(small('straight', 'straight'));
    expect(straight.status).toBe('success');
    for (const f of ['pytorch_lora_weights.safetensors', 'diffusion_pytorch_model.safetensors']) {
      const a = SafetensorsFile.open(join(env.folders.folder('resadapters'), 'resumed', f));
      const b = SafetensorsFile.open(join(env.folders.folder('resadapters'), 'straight', f));
      for (const k of a.keys()) expect(a.readFloat32(k), `${f} ${k}`).toEqual(b.readFloat32(k));
    }
    expect(env.folders.list('resadapters')).toContain('straight');
    // The previews at three sizes were rendered with the new adapter and saved.
    const images = Object.entries(straight.outputs).flatMap(([, ui]) => (ui.images ?? []) as Array<{ filename: string; subfolder: string }>);
    expect(images.map((i) => i.subfolder).sort()).toEqual(['train-resadapter', 'train-resadapter', 'train-resadapter', 'training/straight'].sort());
    expect(readFileSync(join(env.tempDir, 'training', 'straight', 'loss.png')).subarray(1, 4).toString()).toBe('PNG');
  });

  it('dataset problems fail the dataset node with the reason', async () => {
    mkdirSync(join(env.inputDir, 'empty-set'), { recursive: true });
    const p = small('never', 'never');
    p['2']!.inputs.folder = 'empty-set' as never;
    const r = await run(p);
    expect(r.status).toBe('error');
    expect(r.error?.node_id).toBe('2');
    expect(r.error?.exception_message).toMatch(/empty-set holds no images/);
  });

  it('refuses run and adapter names that are paths', async () => {
    const r = await run(small('../escape', 'x'));
    expect(r.status).toBe('error');
    expect(r.error?.exception_message).toMatch(/run_name "\.\.\/escape" must be a plain name/);
  });
});
