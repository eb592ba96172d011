import type { EditorWorkflow } from '../../runtime/workflow/editor-schema.js';

type Slot = { name: string; type: string; link?: number | null; widget?: { name: string } };

let order = 0;
type Node = EditorWorkflow['nodes'][number];

function node(id: number, type: string, opts: { inputs?: Slot[]; outputs?: [string, string, number[]][]; widgets?: Node['widgets_values']; mode?: number; title?: string } = {}): Node {
  return {
    id,
    type,
    pos: [id * 10, id * 20],
    size: [315, 100],
    flags: {},
    order: order++,
    mode: opts.mode ?? 0,
    inputs: (opts.inputs ?? []).map((i) => ({ link: null, ...i })),
    outputs: (opts.outputs ?? []).map(([name, t, links], slot) => ({ name, type: t, links, slot_index: slot })),
    properties: { 'Node name for S&R': type },
    ...(opts.widgets !== undefined ? { widgets_values: opts.widgets } : {}),
    ...(opts.title ? { title: opts.title } : {}),
  };
}

/**
 * An editor workflow with the cases that matter: a seed with its control value, a converted widget fed
 * by a link, a reroute, a muted source, a bypassed node, a primitive node, a note and an unknown type.
 */
export function sampleEditorWorkflow(): EditorWorkflow {
  order = 0;
  return {
    last_node_id: 16,
    last_link_id: 11,
    nodes: [
      node(1, 'Int', { widgets: [3], outputs: [['INT', 'INT', [1, 6, 11]]] }),
      node(2, 'Noise', {
        inputs: [{ name: 'seed', type: 'INT', widget: { name: 'seed' }, link: 1 }],
        widgets: [12345, 'randomize', 20, 0.5, 'euler', true],
        outputs: [['LATENT', 'LATENT', [2]]],
      }),
      node(3, 'Noise', { widgets: [777, 'fixed', 10, 1, 'dpmpp_2m', false], outputs: [['LATENT', 'LATENT', [3]]], title: 'Second noise' }),
      node(4, 'Sink', { inputs: [{ name: 'value', type: '*', link: 2 }] }),
      node(5, 'Sink', { inputs: [{ name: 'value', type: '*', link: 4 }] }),
      node(6, 'Reroute', { inputs: [{ name: '', type: '*', link: 3 }], outputs: [['', 'LATENT', [4]]] }),
      node(7, 'Int', { widgets: [8], outputs: [['INT', 'INT', [5]]], mode: 2 }),
      node(8, 'Show', { inputs: [{ name: 'value', type: '*', link: 5 }] }),
      node(9, 'Concat', {
        inputs: [{ name: 'a', type: 'STRING', widget: { name: 'a' }, link: 7 }],
        widgets: ['', 'b', ' '],
        outputs: [['STRING', 'STRING', [8]]],
        mode: 4,
      }),
      node(10, 'ToString', { inputs: [{ name: 'value', type: 'INT', link: 6 }], outputs: [['STRING', 'STRING', [7]]] }),
      node(11, 'Show', { inputs: [{ name: 'value', type: '*', link: 8 }] }),
      node(12, 'PrimitiveNode', { outputs: [['INT', 'INT', [9]]], widgets: [42, 'fixed'] }),
      node(13, 'Add', { inputs: [{ name: 'a', type: 'INT', widget: { name: 'a' }, link: 9 }], widgets: [0, 5], outputs: [['sum', 'INT', [10]]] }),
      node(14, 'Sink', { inputs: [{ name: 'value', type: '*', link: 10 }] }),
      node(15, 'Note', { widgets: ['remember the milk'] }),
      node(16, 'FancyUpscale', { inputs: [{ name: 'image', type: 'IMAGE', link: 11 }], widgets: ['lanczos'], outputs: [['IMAGE', 'IMAGE', []]] }),
    ],
    links: [
      [1, 1, 0, 2, 0, 'INT'],
      [2, 2, 0, 4, 0, 'LATENT'],
      [3, 3, 0, 6, 0, 'LATENT'],
      [4, 6, 0, 5, 0, 'LATENT'],
      [5, 7, 0, 8, 0, 'INT'],
      [6, 1, 0, 10, 0, 'INT'],
      [7, 10, 0, 9, 0, 'STRING'],
      [8, 9, 0, 11, 0, 'STRING'],
      [9, 12, 0, 13, 0, 'INT'],
      [10, 13, 0, 14, 0, 'INT'],
      [11, 1, 0, 16, 0, 'IMAGE'],
    ],
    groups: [{ title: 'Inputs', bounding: [0, 0, 400, 300] }],
    config: {},
    extra: { ds: { scale: 1, offset: [0, 0] } },
    version: 0.4,
  };
}
