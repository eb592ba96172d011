import { beforeAll, describe, expect, it } from 'vitest';
import { Executor } from '../../runtime/executor/executor.js';
import { validatePrompt } from '../../runtime/executor/validate.js';
import { DEMO_CHECKPOINT } from '../../runtime/models/synthetic/demo.js';
import { importWorkflow } from '../../runtime/workflow/import.js';
import { demoRuntime, type TestRuntime } from '../nodes/helpers.js';

/**
 * Editor files as ComfyUI's frontend saves them: a legacy group node (`extra.groupNodes`, instance type
 * `workflow/<name>`) and an old file whose seed widget is followed by a boolean toggle.
 */

const node = (id: number, type: string, extra: Record<string, unknown> = {}) => ({ id, type, pos: [0, 0], size: [200, 100], flags: {}, order: id, mode: 0, properties: {}, ...extra });

/** Loader and prompts outside; EmptyLatentImage → KSampler inside the group "Sampler"; decode and save outside. */
function groupWorkflow(instanceType = 'workflow/Sampler') {
  return {
    last_node_id: 10,
    last_link_id: 8,
    nodes: [
      node(1, 'CheckpointLoaderSimple', {
        outputs: [
          { name: 'MODEL', type: 'MODEL', links: [1] },
          { name: 'CLIP', type: 'CLIP', links: [2, 3] },
          { name: 'VAE', type: 'VAE', links: [6] },
        ],
        widgets_values: [DEMO_CHECKPOINT],
      }),
      node(2, 'CLIPTextEncode', { inputs: [{ name: 'clip', type: 'CLIP', link: 2 }], outputs: [{ name: 'CONDITIONING', type: 'CONDITIONING', links: [4] }], widgets_values: ['a red circle'] }),
      node(3, 'CLIPTextEncode', { inputs: [{ name: 'clip', type: 'CLIP', link: 3 }], outputs: [{ name: 'CONDITIONING', type: 'CONDITIONING', links: [5] }], widgets_values: [''] }),
      node(10, instanceType, {
        inputs: [
          { name: 'model', type: 'MODEL', link: 1 },
          { name: 'positive', type: 'CONDITIONING', link: 4 },
          { name: 'negative', type: 'CONDITIONING', link: 5 },
        ],
        outputs: [{ name: 'LATENT', type: 'LATENT', links: [7] }],
        // EmptyLatentImage's width/height/batch, then KSampler's seed + companion, steps, cfg, sampler, scheduler, denoise.
        widgets_values: [64, 96, 1, 4242, 'fixed', 2, 6.5, 'euler', 'karras', 1],
      }),
      node(5, 'VAEDecode', {
        inputs: [
          { name: 'samples', type: 'LATENT', link: 7 },
          { name: 'vae', type: 'VAE', link: 6 },
        ],
        outputs: [{ name: 'IMAGE', type: 'IMAGE', links: [8] }],
      }),
      node(6, 'SaveImage', { inputs: [{ name: 'images', type: 'IMAGE', link: 8 }], widgets_values: ['group'] }),
    ],
    links: [
      [1, 1, 0, 10, 0, 'MODEL'],
      [2, 1, 1, 2, 0, 'CLIP'],
      [3, 1, 1, 3, 0, 'CLIP'],
      [4, 2, 0, 10, 1, 'CONDITIONING'],
      [5, 3, 0, 10, 2, 'CONDITIONING'],
      [6, 1, 2, 5, 1, 'VAE'],
      [7, 10, 0, 5, 0, 'LATENT'],
      [8, 5, 0, 6, 0, 'IMAGE'],
    ],
    groups: [],
    config: {},
    extra: {
      groupNodes: {
        Sampler: {
          nodes: [
            {
              type: 'EmptyLatentImage',
              pos: [0, 0],
              size: { 0: 315, 1: 106 },
              flags: {},
              order: 0,
              mode: 0,
              outputs: [{ name: 'LATENT', type: 'LATENT', links: [], shape: 3, slot_index: 0 }],
              properties: { 'Node name for S&R': 'EmptyLatentImage' },
              widgets_values: [512, 512, 1],
              index: 0,
            },
            {
              type: 'KSampler',
              pos: [400, 0],
              size: { 0: 315, 1: 262 },
              flags: {},
              order: 1,
              mode: 0,
              inputs: [
                { name: 'model', type: 'MODEL', link: null },
                { name: 'positive', type: 'CONDITIONING', link: null },
                { name: 'negative', type: 'CONDITIONING', link: null },
                { name: 'latent_image', type: 'LATENT', link: null },
              ],
              outputs: [{ name: 'LATENT', type: 'LATENT', links: [], shape: 3, slot_index: 0 }],
              properties: { 'Node name for S&R': 'KSampler' },
              widgets_values: [1, 'randomize', 20, 8, 'euler', 'normal', 1],
              index: 1,
            },
          ],
          links: [[0, 0, 1, 3, 7, 'LATENT']],
          external: [],
        },
      },
    },
    version: 0.4,
  };
}

describe('legacy editor formats', () => {
  let rt: TestRuntime;
  beforeAll(async () => {
    rt = await demoRuntime('resflow-groups-');
  });

  it('expands a group node into its inner nodes with the instance widget values and outer links', () => {
    for (const type of ['workflow/Sampler', 'workflow>Sampler']) {
      const r = importWorkflow(groupWorkflow(type), rt.registry);
      if (!r.success) throw r.error;
      const { prompt, warnings } = r.data;
      expect(warnings).toEqual([]);
      expect(prompt['10']).toBeUndefined();
      expect(prompt['10:0']).toMatchObject({ class_type: 'EmptyLatentImage', inputs: { width: 64, height: 96, batch_size: 1 } });
      expect(prompt['10:1']).toMatchObject({
        class_type: 'KSampler',
        inputs: { model: ['1', 0], positive: ['2', 0], negative: ['3', 0], latent_image: ['10:0', 0], seed: 4242, steps: 2, cfg: 6.5, sampler_name: 'euler', scheduler: 'karras', denoise: 1 },
      });
      expect(prompt['5']!.inputs.samples).toEqual(['10:1', 0]);
    }
  });

  it('the expanded workflow validates and runs', async () => {
    const r = importWorkflow(groupWorkflow(), rt.registry);
    if (!r.success) throw r.error;
    const v = await validatePrompt(r.data.prompt, rt.registry);
    if (!v.ok) throw new Error(JSON.stringify(v.node_errors));
    expect(v.node_errors).toEqual({});
    const result = await new Executor().run(v.graph);
    expect(result.status).toBe('success');
    const images = (result.outputs['6']?.images ?? []) as Array<{ filename: string }>;
    expect(images).toHaveLength(1);
  });

  it('reads the old seed widget followed by a boolean toggle without shifting later values', async () => {
    const wf = groupWorkflow();
    const inner = wf.extra.groupNodes.Sampler.nodes;
    // Ungrouped: the same two nodes as plain nodes, saved by an old editor.
    wf.nodes = wf.nodes.filter((n) => n.id !== 10);
    wf.nodes.push(
      node(11, 'EmptyLatentImage', { outputs: [{ name: 'LATENT', type: 'LATENT', links: [9] }], widgets_values: [64, 64, 1] }),
      node(12, 'KSampler', {
        inputs: [...inner[1]!.inputs!.map((i, k) => ({ ...i, link: [1, 4, 5, 9][k] }))],
        outputs: [{ name: 'LATENT', type: 'LATENT', links: [7] }],
        widgets_values: [77, true, 3, 5.5, 'euler_ancestral', 'normal', 0.9],
      }),
    );
    wf.links = wf.links.map((l) => (l[3] === 10 ? [l[0], l[1], l[2], 12, l[4], l[5]] : l[1] === 10 ? [l[0], 12, 0, l[3], l[4], l[5]] : l)) as typeof wf.links;
    wf.links.push([9, 11, 0, 12, 3, 'LATENT']);
    delete (wf.extra as { groupNodes?: unknown }).groupNodes;
    const r = importWorkflow(wf, rt.registry);
    if (!r.success) throw r.error;
    expect(r.data.prompt['12']!.inputs).toMatchObject({ seed: 77, steps: 3, cfg: 5.5, sampler_name: 'euler_ancestral', scheduler: 'normal', denoise: 0.9 });
    const v = await validatePrompt(r.data.prompt, rt.registry);
    if (!v.ok) throw new Error(JSON.stringify(v.node_errors));
    expect(v.node_errors).toEqual({});
  });

  it('fills widget inputs an old API prompt lacks with their defaults, and says so', async () => {
    const prompt = {
      '1': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: DEMO_CHECKPOINT } },
      '2': { class_type: 'EmptyLatentImage', inputs: { width: 64, height: 64 } },
    };
    const r = importWorkflow(prompt, rt.registry);
    if (!r.success) throw r.error;
    expect(r.data.prompt['2']!.inputs.batch_size).toBe(1);
    expect(r.data.warnings).toEqual(['node 2 (EmptyLatentImage): no value for "batch_size", using its default 1']);
    // No output node here, so the prompt as a whole is refused, but node 2 itself is complete.
    const v = await validatePrompt(r.data.prompt, rt.registry);
    expect(v.node_errors['2']).toBeUndefined();
  });

  it('names a group node whose definition is missing', () => {
    const wf = groupWorkflow('workflow/Missing');
    const r = importWorkflow(wf, rt.registry);
    if (!r.success) throw r.error;
    expect(r.data.warnings.join('\n')).toContain('group node "Missing" has no definition');
  });
});
