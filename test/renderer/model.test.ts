import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCoreRegistry } from '../../nodes/core/index.js';
import { createRuntimeEnv } from '../../nodes/env.js';
import type { NodeRegistry } from '../../nodes/registry.js';
import { nextControlledValue } from '../../renderer/src/controls.js';
import { NodeLibrary } from '../../renderer/src/defs.js';
import { toModel, toWorkflow, type GraphModel } from '../../renderer/src/model.js';
import { UndoableStore } from '../../renderer/src/store.js';
import type { EditorWorkflow } from '../../runtime/workflow/editor-schema.js';
import { editorToApi } from '../../runtime/workflow/editor-to-api.js';
import { importWorkflow } from '../../runtime/workflow/import.js';

/** The editor's document model and its codecs, without a browser. */
let dir: string;
let registry: NodeRegistry;
let lib: NodeLibrary;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'resflow-model-'));
  const env = createRuntimeEnv({ dataDir: dir });
  registry = createCoreRegistry(env);
  lib = new NodeLibrary(JSON.parse(JSON.stringify(await registry.objectInfo())));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const WORKFLOWS = join(import.meta.dirname, '..', '..', 'workflows');

function load(file: string): EditorWorkflow {
  const imported = importWorkflow(readFileSync(join(WORKFLOWS, file), 'utf8'), registry);
  if (!imported.success) throw imported.error;
  return imported.data.workflow;
}

describe('node library from /object_info', () => {
  it('reads every node type the server offers, with the same inputs', () => {
    expect(lib.rejected).toEqual([]);
    expect(lib.names()).toEqual(registry.names());
    for (const name of registry.names()) {
      expect(lib.get(name)!.inputs.map((i) => [i.name, i.spec.type, i.widget]), name).toEqual(registry.get(name)!.inputs.map((i) => [i.name, i.spec.type, i.widget]));
    }
  });

  it('lays out widgets_values as ComfyUI does, with a control slot after the seed', () => {
    expect(lib.widgetLayout('KSampler').map((s) => s.name)).toEqual(['seed', 'control_after_generate', 'steps', 'cfg', 'sampler_name', 'scheduler', 'denoise']);
  });
});

describe('editor model codec', () => {
  const files = readdirSync(WORKFLOWS).filter((f) => f.endsWith('.json'));

  it.each(files)('round-trips %s and converts to the same API prompt as the server', (file) => {
    const workflow = load(file);
    const model = toModel(workflow, lib);
    const again = toWorkflow(model, lib);
    expect(editorToApi(again, lib.registry).prompt).toEqual(editorToApi(workflow, registry).prompt);
    expect(toModel(again, lib)).toEqual(model);
  });

  it('keeps widget values by name, so a reordered widget list still maps correctly', () => {
    const model = toModel(load('resadapter-txt2img-512.json'), lib);
    const sampler = Object.values(model.nodes).find((n) => n.type === 'KSampler')!;
    expect(sampler.widgets).toMatchObject({ seed: 42, steps: 20, cfg: 7, sampler_name: 'euler_ancestral', scheduler: 'karras', denoise: 1 });
    expect(sampler.controls).toEqual({ seed: 'fixed' });
    // Values missing from a hand-written file come back as spec defaults, in position.
    delete sampler.widgets.cfg;
    const node = toWorkflow(model, lib).nodes.find((n) => n.id === sampler.id)!;
    expect(node.widgets_values).toEqual([42, 'fixed', 20, 8, 'euler_ancestral', 'karras', 1]);
  });

  it('reads workflows written without the control value and ones keyed by name', () => {
    const base = load('resadapter-txt2img-512.json');
    const sampler = base.nodes.find((n) => n.type === 'KSampler')!;
    sampler.widgets_values = [7, 30, 6.5, 'euler', 'normal', 0.8];
    let model = toModel(base, lib);
    expect(model.nodes[String(sampler.id)].widgets).toMatchObject({ seed: 7, steps: 30, cfg: 6.5, denoise: 0.8 });
    sampler.widgets_values = { steps: 12, seed: 3 } as unknown as unknown[];
    model = toModel(base, lib);
    expect(model.nodes[String(sampler.id)].widgets).toEqual({ steps: 12, seed: 3 });
  });

  it('carries unknown node types and extra fields through untouched', () => {
    const base = load('resadapter-txt2img-512.json');
    base.nodes.push({ id: 99, type: 'SomeCustomNode', pos: [0, 0], size: [100, 50], flags: {}, order: 0, mode: 0, inputs: [], outputs: [], properties: { x: 1 }, widgets_values: ['a', 3], shape: 2 } as never);
    const again = toWorkflow(toModel(base, lib), lib);
    const custom = again.nodes.find((n) => n.id === 99)!;
    expect(custom).toMatchObject({ type: 'SomeCustomNode', widgets_values: ['a', 3], properties: { x: 1 }, shape: 2 });
  });

  it('leaves the viewport and litegraph\'s derived order out of the document', () => {
    const workflow = load('resadapter-txt2img-512.json');
    workflow.extra = { ds: { scale: 0.5, offset: [10, 20] }, note: 'kept' };
    const model = toModel(workflow, lib);
    expect(model.extra).toEqual({ note: 'kept' });
    const reordered = structuredClone(workflow);
    reordered.nodes.reverse();
    reordered.nodes.forEach((n, i) => (n.order = i));
    expect(toModel(reordered, lib)).toEqual(model);
  });
});

describe('undoable store', () => {
  it('records an edit as patches touching only what changed, and undoes/redoes it', () => {
    const model = toModel(load('resadapter-txt2img-512.json'), lib);
    const store = new UndoableStore<GraphModel>(model);
    const moved = structuredClone(model);
    moved.nodes['1'].pos = [123, 456];
    expect(store.commit('move', moved)).toBe(true);
    expect(store.commit('move', moved)).toBe(false);
    const changes: string[] = [];
    store.subscribe((_s, c) => changes.push(`${c.kind}:${c.patches.map((p) => p.path.join('.')).join(',')}`));
    expect(store.undo()).toBe(true);
    expect(store.state.nodes['1'].pos).toEqual(model.nodes['1'].pos);
    expect(store.redo()).toBe(true);
    expect(store.state.nodes['1'].pos).toEqual([123, 456]);
    expect(changes).toEqual(['undo:nodes.1.pos.0,nodes.1.pos.1', 'redo:nodes.1.pos.0,nodes.1.pos.1']);
    // Untouched nodes are shared between versions, not copied.
    expect(store.state.nodes['2']).toBe(model.nodes['2']);
  });

  it('undoes a node deletion with its links, and a new edit clears redo', () => {
    const model = toModel(load('resadapter-txt2img-512.json'), lib);
    const store = new UndoableStore<GraphModel>(model);
    const deleted = structuredClone(model);
    delete deleted.nodes['7'];
    for (const [id, link] of Object.entries(deleted.links)) if (String(link[1]) === '7' || String(link[3]) === '7') delete deleted.links[id];
    store.commit('delete', deleted);
    store.undo();
    expect(store.state).toEqual(model);
    expect(store.canRedo).toBe(true);
    store.update('rename', (d) => void (d.nodes['1'].title = 'Checkpoint'));
    expect(store.canRedo).toBe(false);
    expect(store.history()).toEqual(['rename']);
  });
});

describe('control after generate', () => {
  it('randomizes within range, steps by the widget step and clamps', () => {
    expect(nextControlledValue('fixed', 5, { min: 0, max: 10 })).toBe(5);
    expect(nextControlledValue('increment', 5, { min: 0, max: 10 })).toBe(6);
    expect(nextControlledValue('increment', 10, { min: 0, max: 10 })).toBe(10);
    expect(nextControlledValue('decrement', 0, { min: 0, max: 10 })).toBe(0);
    expect(nextControlledValue('increment', 8, { min: 0, max: 64, step2: 8 })).toBe(16);
    expect(nextControlledValue('randomize', 5, { min: 0, max: 0xffffffffffffffff }, () => 0.5)).toBe(2 ** 49);
    for (let i = 0; i < 50; i++) {
      const v = nextControlledValue('randomize', 0, { min: 3, max: 9 });
      expect(v).toBeGreaterThanOrEqual(3);
      expect(v).toBeLessThanOrEqual(9);
      expect(Number.isInteger(v)).toBe(true);
    }
  });
});
