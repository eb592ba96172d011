import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCoreRegistry } from '../../nodes/core/index.js';
import { createRuntimeEnv, type RuntimeEnv } from '../../nodes/env.js';
import type { NodeRegistry } from '../../nodes/registry.js';
import type { NodeContext, NodeSpec } from '../../nodes/spec.js';
import { ensureDemoInput, ensureDemoModels } from '../../runtime/models/synthetic/demo.js';
import { ensureShapesModel } from '../../runtime/shapes/provision.js';
import { expect } from 'vitest';
import { Executor, type RunResult } from '../../runtime/executor/executor.js';
import { validatePrompt } from '../../runtime/executor/validate.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';
import { importWorkflow } from '../../runtime/workflow/import.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const WORKFLOWS = join(REPO, 'workflows');

export interface TestRuntime {
  env: RuntimeEnv;
  registry: NodeRegistry;
}

/** A fresh data dir with the demo models and input image in it. */
export async function demoRuntime(prefix = 'resflow-nodes-'): Promise<TestRuntime> {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  const env = createRuntimeEnv({ dataDir });
  ensureDemoModels(env.folders.modelsDir);
  ensureShapesModel(env.folders.modelsDir);
  await ensureDemoInput(env.inputDir);
  return { env, registry: createCoreRegistry(env) };
}

export function workflowFiles(): string[] {
  return readdirSync(WORKFLOWS).filter((f) => f.endsWith('.json')).sort();
}

export function loadWorkflowPrompt(file: string, registry: NodeRegistry): { prompt: ApiPrompt; workflow: unknown } {
  const r = importWorkflow(readFileSync(join(WORKFLOWS, file), 'utf8'), registry);
  if (!r.success) throw r.error;
  return { prompt: r.data.prompt, workflow: r.data.workflow };
}

/** Makes example workflows cheap enough for tests: few steps, and a smaller canvas where asked. */
export function shrink(prompt: ApiPrompt, steps = 2, maxSide?: number): ApiPrompt {
  const out = structuredClone(prompt);
  for (const node of Object.values(out)) {
    if (node.class_type === 'KSampler' || node.class_type === 'KSamplerAdvanced') {
      const full = Number(node.inputs.steps);
      node.inputs.steps = Math.min(full, steps) as never;
      // A step window inside the schedule (base → refiner hand-over) keeps its place in the shorter one.
      for (const k of ['start_at_step', 'end_at_step'] as const) {
        const v = Number(node.inputs[k]);
        if (node.class_type === 'KSamplerAdvanced' && v > 0 && v < full) node.inputs[k] = Math.max(1, Math.floor((v * Math.min(full, steps)) / full)) as never;
      }
    }
    // Training runs `steps` optimiser steps too: enough to exercise dataset → train → save → preview.
    if (node.class_type === 'TrainResAdapter') node.inputs.steps = Math.min(Number(node.inputs.steps), steps) as never;
    if (maxSide && (node.class_type === 'EmptyLatentImage' || node.class_type === 'ImageScale')) {
      const w = Number(node.inputs.width);
      const h = Number(node.inputs.height);
      const f = Math.min(1, maxSide / Math.max(w, h));
      node.inputs.width = (Math.round((w * f) / 8) * 8) as never;
      node.inputs.height = (Math.round((h * f) / 8) * 8) as never;
    }
  }
  return out;
}

/** Validates `prompt` (throwing the node errors), runs it through a fresh executor and expects success. */
export async function runValid(prompt: ApiPrompt, registry: NodeRegistry): Promise<RunResult> {
  const v = await validatePrompt(prompt, registry);
  if (!v.ok) throw new Error(JSON.stringify(v.node_errors));
  const r = await new Executor().run(v.graph);
  expect(r.status, r.error?.exception_message).toBe('success');
  return r;
}

/** A test sink node, `TestCapture(value, key)`: records what reaches it, so assertions see real node outputs. */
export function captureNode(): { spec: NodeSpec; captured: Map<string, unknown> } {
  const captured = new Map<string, unknown>();
  const spec: NodeSpec = {
    name: 'TestCapture',
    category: 'test',
    inputs: { required: { value: { type: '*' }, key: { type: 'STRING', default: '' } } },
    outputs: [],
    outputNode: true,
    execute({ value, key }) {
      captured.set(String(key), value);
      return { ui: {} };
    },
  };
  return { spec, captured };
}

/** The context a unit test gives a node it executes directly, outside the executor. */
export const TEST_CONTEXT: NodeContext = { nodeId: 't', promptId: 't', signal: new AbortController().signal, progress() {}, log() {} };

/** Executes one node type directly with `inputs`, returning its outputs. */
export async function execNode(registry: NodeRegistry, name: string, inputs: Record<string, unknown>): Promise<unknown[]> {
  return (await registry.require(name).spec.execute(inputs, TEST_CONTEXT)) as unknown[];
}
