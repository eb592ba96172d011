import { z } from 'zod';
import { parseWith, type ParseResult } from './issues.js';

/**
 * ComfyUI's API prompt: `{ [nodeId]: { class_type, inputs: { name: value | [nodeId, outputIndex] }, _meta? } }`.
 * Input values stay `unknown` here on purpose: whether `["4", 0]` is a well-formed link, or 7 a valid INT,
 * depends on the node's spec, and the validator reports those per node, the way the editor expects.
 */
export const apiNodeSchema = z.looseObject({
  class_type: z.string().min(1),
  inputs: z.record(z.string(), z.unknown()).default({}),
  _meta: z.looseObject({ title: z.string().optional() }).optional(),
});

export const apiPromptSchema = z.record(z.string().min(1), apiNodeSchema);

export type ApiNode = z.output<typeof apiNodeSchema>;
export type ApiPrompt = z.output<typeof apiPromptSchema>;
/** `[source node id, output slot]`. */
export type ApiLink = [string, number];

/** The body of `POST /prompt`. */
export const promptRequestSchema = z.looseObject({
  prompt: apiPromptSchema,
  client_id: z.string().optional(),
  prompt_id: z.string().optional(),
  number: z.number().optional(),
  front: z.boolean().optional(),
  extra_data: z
    .looseObject({
      client_id: z.string().optional(),
      extra_pnginfo: z.record(z.string(), z.unknown()).optional(),
    })
    .optional(),
  partial_execution_targets: z.array(z.string()).optional(),
});

export type PromptRequest = z.output<typeof promptRequestSchema>;

export function parseApiPrompt(input: unknown): ParseResult<ApiPrompt> {
  return parseWith(apiPromptSchema, 'API prompt', input);
}

export function parsePromptRequest(input: unknown): ParseResult<PromptRequest> {
  return parseWith(promptRequestSchema, 'prompt request', input);
}

/** ComfyUI's is_link: a two-element list of a node id and an integer slot. */
export function isLinkValue(value: unknown): value is [string | number, number] {
  return (
    Array.isArray(value) &&
    value.length === 2 &&
    (typeof value[0] === 'string' || typeof value[0] === 'number') &&
    Number.isInteger(value[1])
  );
}
