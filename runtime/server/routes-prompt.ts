import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { NodeRegistry } from '../nodes-api/registry.js';
import { validatePrompt } from '../executor/validate.js';
import { HttpError, parseOr400, queryOf, readJson, sendEmpty, sendJson } from './http.js';
import type { ServerQueue } from './server-queue.js';
import type { Router } from './router.js';

const promptBody = z.looseObject({
  // Checked by validatePrompt, which reports a malformed prompt in ComfyUI's own error shape.
  prompt: z.unknown().optional(),
  client_id: z.string().regex(/^[\w-]{1,128}$/, 'client_id must be 1-128 letters, digits, "_" or "-"').optional(),
  prompt_id: z.string().regex(/^[\w-]{1,128}$/, 'prompt_id must be 1-128 letters, digits, "_" or "-"').optional(),
  number: z.number().finite().optional(),
  front: z.boolean().optional(),
  extra_data: z.looseObject({ extra_pnginfo: z.record(z.string(), z.unknown()).optional() }).optional(),
  partial_execution_targets: z.array(z.string()).optional(),
});

const manageBody = z
  .strictObject({ clear: z.boolean().optional(), delete: z.array(z.string()).max(10_000).optional() })
  .optional()
  .transform((v) => v ?? {});

const interruptBody = z
  .strictObject({ prompt_id: z.string().optional() })
  .optional()
  .transform((v) => v ?? {});

const historyQuery = z.object({
  max_items: z.coerce.number().int().min(0).optional(),
  offset: z.coerce.number().int().optional(),
});

export interface PromptRouteDeps {
  registry: NodeRegistry;
  queue: ServerQueue;
  maxJsonBytes: number;
}

/** The body of a refused prompt: ComfyUI's `{ error, node_errors }`, which the editor knows how to show. */
function promptError(e: HttpError): Record<string, unknown> {
  return { ...e.body(), node_errors: {} };
}

export function addPromptRoutes(router: Router, { registry, queue, maxJsonBytes }: PromptRouteDeps): void {
  router.get('/prompt', ({ res }) => sendJson(res, 200, { exec_info: { queue_remaining: queue.remaining() } }));

  router.post('/prompt', async ({ req, res }) => {
    let body: z.output<typeof promptBody>;
    try {
      body = await readJson(req, promptBody, maxJsonBytes);
    } catch (e) {
      if (e instanceof HttpError) return sendJson(res, e.status, promptError(e));
      throw e;
    }
    if (body.prompt === undefined) {
      return sendJson(res, 400, promptError(new HttpError(400, 'no_prompt', 'No prompt provided', 'No prompt provided')));
    }
    const promptId = body.prompt_id ?? randomUUID();
    if (queue.has(promptId)) {
      return sendJson(res, 400, promptError(new HttpError(400, 'duplicate_prompt_id', `Prompt ${promptId} is already queued`)));
    }
    const valid = await validatePrompt(body.prompt, registry, { outputs: body.partial_execution_targets });
    if (!valid.ok) return sendJson(res, 400, { error: valid.error, node_errors: valid.node_errors });
    const extraData: Record<string, unknown> = { ...(body.extra_data ?? {}) };
    if (body.client_id !== undefined) extraData.client_id = body.client_id;
    const number = body.number ?? queue.nextNumber(body.front === true);
    await queue.enqueue({ number, promptId, prompt: valid.graph.prompt, extraData, outputs: valid.outputs, graph: valid.graph });
    sendJson(res, 200, { prompt_id: promptId, number, node_errors: valid.node_errors });
  });

  router.get('/queue', ({ res }) => sendJson(res, 200, queue.snapshot()));

  router.post('/queue', async ({ req, res }) => {
    const body = await readJson(req, manageBody, maxJsonBytes);
    if (body.clear) queue.clear();
    if (body.delete) queue.delete(body.delete);
    sendEmpty(res);
  });

  router.post('/interrupt', async ({ req, res }) => {
    const body = await readJson(req, interruptBody, maxJsonBytes);
    queue.interrupt(body.prompt_id);
    sendEmpty(res);
  });

  router.get('/history', ({ res, url }) => {
    const q = parseOr400(historyQuery, queryOf(url), 'query');
    sendJson(res, 200, queue.history.list(q.max_items, q.offset));
  });

  router.get('/history/{id}', ({ res, params }) => {
    const entry = queue.history.get(params.id);
    sendJson(res, 200, entry ? { [params.id]: entry } : {});
  });

  router.post('/history', async ({ req, res }) => {
    const body = await readJson(req, manageBody, maxJsonBytes);
    if (body.clear) queue.history.clear();
    if (body.delete) queue.history.delete(body.delete);
    sendEmpty(res);
  });
}
