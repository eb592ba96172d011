import { z } from 'zod';
import { parseWith, type ParseResult } from './issues.js';

/**
 * The editor's (litegraph) workflow JSON, version 0.4. Objects are loose: the frontend and extensions
 * add fields we must carry through untouched when a workflow is re-saved.
 */

export const NODE_MODE = { ALWAYS: 0, ON_EVENT: 1, NEVER: 2, ON_TRIGGER: 3, BYPASS: 4 } as const;

// Group nodes historically used "12:3" ids, so ids may be strings.
export const editorNodeIdSchema = z.union([z.number().int(), z.string().min(1)]);
// Extensions use numbers and arrays as slot types; nothing here depends on the exact value.
const dataType = z.union([z.string(), z.number(), z.array(z.string())]);

// Float32Array fields were once serialized as {"0": x, "1": y}.
const vec2 = z.union([
  z.tuple([z.number(), z.number()]),
  z.object({ 0: z.number(), 1: z.number() }).transform((o): [number, number] => [o[0], o[1]]),
]);

export const editorInputSchema = z.looseObject({
  name: z.string(),
  type: dataType,
  link: z.number().int().nullable().optional(),
  widget: z.looseObject({ name: z.string() }).optional(),
  label: z.string().optional(),
  localized_name: z.string().optional(),
  slot_index: z.number().int().optional(),
});

export const editorOutputSchema = z.looseObject({
  name: z.string(),
  type: dataType,
  links: z.array(z.number().int()).nullable().optional(),
  slot_index: z.number().int().optional(),
  label: z.string().optional(),
  localized_name: z.string().optional(),
});

export const editorNodeSchema = z.looseObject({
  id: editorNodeIdSchema,
  type: z.string().min(1),
  pos: vec2,
  size: vec2,
  flags: z.looseObject({ collapsed: z.boolean().optional(), pinned: z.boolean().optional() }).default({}),
  order: z.number().int().default(0),
  mode: z.number().int().min(0).max(4).default(NODE_MODE.ALWAYS),
  inputs: z.array(editorInputSchema).default([]),
  outputs: z.array(editorOutputSchema).default([]),
  properties: z.record(z.string(), z.unknown()).default({}),
  // Some custom nodes serialize their widgets as an object keyed by name.
  widgets_values: z.union([z.array(z.unknown()), z.record(z.string(), z.unknown())]).optional(),
  title: z.string().optional(),
  color: z.string().optional(),
  bgcolor: z.string().optional(),
});

/** `[id, origin node, origin slot, target node, target slot, type]`. */
export const editorLinkSchema = z.tuple([
  z.number().int(),
  editorNodeIdSchema,
  z.number().int().min(0),
  editorNodeIdSchema,
  z.number().int().min(0),
  dataType,
]);

export const editorGroupSchema = z.looseObject({
  title: z.string(),
  bounding: z.tuple([z.number(), z.number(), z.number(), z.number()]),
  color: z.string().optional(),
  font_size: z.number().optional(),
  flags: z.looseObject({}).optional(),
});

export const editorWorkflowSchema = z
  .looseObject({
    id: z.string().optional(),
    revision: z.number().optional(),
    last_node_id: editorNodeIdSchema,
    last_link_id: z.number().int(),
    nodes: z.array(editorNodeSchema),
    links: z.array(editorLinkSchema),
    groups: z.array(editorGroupSchema).default([]),
    config: z.looseObject({}).default({}),
    extra: z.looseObject({}).default({}),
    version: z.literal(0.4, { error: 'only workflow version 0.4 is supported' }),
  })
  .superRefine((wf, ctx) => {
    const ids = new Set<string>();
    wf.nodes.forEach((node, i) => {
      const id = String(node.id);
      if (ids.has(id)) ctx.addIssue({ code: 'custom', message: `duplicate node id ${id}`, path: ['nodes', i, 'id'] });
      ids.add(id);
    });
    const linkIds = new Set<number>();
    wf.links.forEach((link, i) => {
      if (linkIds.has(link[0])) ctx.addIssue({ code: 'custom', message: `duplicate link id ${link[0]}`, path: ['links', i, 0] });
      linkIds.add(link[0]);
    });
  });

export type EditorNodeId = z.output<typeof editorNodeIdSchema>;
export type EditorInput = z.output<typeof editorInputSchema>;
export type EditorOutput = z.output<typeof editorOutputSchema>;
export type EditorNode = z.output<typeof editorNodeSchema>;
export type EditorLink = z.output<typeof editorLinkSchema>;
export type EditorGroup = z.output<typeof editorGroupSchema>;
export type EditorWorkflow = z.output<typeof editorWorkflowSchema>;

export function parseEditorWorkflow(input: unknown): ParseResult<EditorWorkflow> {
  return parseWith(editorWorkflowSchema, 'editor workflow', input);
}
