import { z } from 'zod';

/**
 * What travels through Redis between the front server and the workers. Two BullMQ queues carry the durable
 * part (prompts to workers, results back to the front), so a restart of either side loses nothing; two
 * pub/sub channels carry what is only worth having live (progress and previews, interrupt requests).
 */

export const DEFAULT_FARM_PREFIX = 'resflow';

/** Farm prefixes and worker names end up in Redis key names and client names: letters, digits, `_ . -` only. */
export function checkFarmName(what: string, value: string): string {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(value)) throw new Error(`${what} "${value}" may only use letters, digits, "_", "." and "-" (at most 64)`);
  return value;
}
export const PROMPT_QUEUE = 'prompts';
export const RESULT_QUEUE = 'results';

export const eventsChannel = (prefix: string) => `${prefix}:events`;
export const controlChannel = (prefix: string) => `${prefix}:control`;

/** BullMQ priorities: lower runs first; `front` prompts jump ahead of the rest, FIFO within each. */
export const FRONT_PRIORITY = 1;
export const NORMAL_PRIORITY = 10;

export const modelRefSchema = z.object({
  kind: z.string(),
  name: z.string(),
  fingerprint: z.string(),
});
export type ModelRef = z.output<typeof modelRefSchema>;

export const promptJobSchema = z.object({
  promptId: z.string(),
  number: z.number(),
  prompt: z.record(z.string(), z.unknown()),
  extraData: z.record(z.string(), z.unknown()),
  outputs: z.array(z.string()),
  models: z.array(modelRefSchema),
});
export type PromptJob = z.output<typeof promptJobSchema>;

export const outputFileSchema = z.object({
  type: z.enum(['output', 'temp']),
  subfolder: z.string(),
  filename: z.string(),
  /** base64 */
  data: z.string(),
});
export type OutputFile = z.output<typeof outputFileSchema>;

export const resultJobSchema = z.object({
  promptId: z.string(),
  /** The job it answers, so a front server that restarted meanwhile can still record it. */
  prompt: promptJobSchema,
  worker: z.string(),
  status: z.enum(['success', 'error', 'interrupted']),
  /** UI outputs by node id, with file names as the worker saved them. */
  outputs: z.record(z.string(), z.record(z.string(), z.array(z.unknown()))),
  /** History messages of the run (execution_start, execution_cached, the terminal event). */
  messages: z.array(z.tuple([z.string(), z.record(z.string(), z.unknown())])),
  files: z.array(outputFileSchema),
});
export type ResultJob = z.output<typeof resultJobSchema>;

/** A live executor event relayed by a worker; preview images travel as base64. */
export const relayedEventSchema = z.object({
  worker: z.string(),
  type: z.string(),
  data: z.record(z.string(), z.unknown()),
});
export type RelayedEvent = z.output<typeof relayedEventSchema>;

export const controlMessageSchema = z.object({ type: z.literal('interrupt'), promptIds: z.array(z.string()) });
export type ControlMessage = z.output<typeof controlMessageSchema>;
