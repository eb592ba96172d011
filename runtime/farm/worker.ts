import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { relative, resolve } from 'node:path';
import { Queue, Worker, type Job } from 'bullmq';
import type { RedisOptions } from 'ioredis';
import type { RuntimeEnv } from '../nodes-api/env.js';
import type { NodeRegistry } from '../nodes-api/registry.js';
import type { ExecutorEvent } from '../executor/events.js';
import { Executor, type RunResult } from '../executor/executor.js';
import { validatePrompt } from '../executor/validate.js';
import { missingModels } from './model-refs.js';
import {
  controlChannel,
  controlMessageSchema,
  checkFarmName,
  DEFAULT_FARM_PREFIX,
  eventsChannel,
  PROMPT_QUEUE,
  promptJobSchema,
  RESULT_QUEUE,
  type OutputFile,
  type PromptJob,
  type RelayedEvent,
  type ResultJob,
} from './protocol.js';
import { bullConnection, connect } from './redis.js';

export interface FarmWorkerOptions {
  redis: RedisOptions;
  prefix?: string;
  env: RuntimeEnv;
  registry: NodeRegistry;
  /** Prompts run at once by this process, each on its own executor. */
  concurrency?: number;
  /** Name shown in logs and results (default: host:pid). */
  name?: string;
  /** How often a prompt may be picked up again after its worker died before it is reported failed. */
  maxRetries?: number;
  /** A worker that stops renewing its lock this long is considered dead (ms). */
  lockDurationMs?: number;
  log?: (message: string) => void;
}

export interface RunningWorker {
  name: string;
  close(): Promise<void>;
}

/** Live events worth relaying; what the front emits itself after storing results is left out. */
const RELAYED = new Set(['execution_start', 'execution_cached', 'executing', 'progress', 'preview_image']);

function errorMessages(promptId: string, message: string): ResultJob['messages'] {
  return [
    ['execution_start', { prompt_id: promptId, timestamp: Date.now() }],
    [
      'execution_error',
      { prompt_id: promptId, node_id: '', node_type: '', executed: [], exception_message: message, exception_type: 'FarmError', traceback: [], current_inputs: {}, current_outputs: [], timestamp: Date.now() },
    ],
  ];
}

/**
 * A farm worker: takes prompts from Redis, runs them on its own executors and model folders, relays live events,
 * and hands results (UI outputs plus the files they name) back through a durable queue. A prompt naming a model
 * this machine lacks (or has a different copy of) is refused with the reason, not run against the wrong file.
 */
export async function startFarmWorker(opts: FarmWorkerOptions): Promise<RunningWorker> {
  const prefix = checkFarmName('farm prefix', opts.prefix ?? DEFAULT_FARM_PREFIX);
  const name = checkFarmName('worker name', opts.name ?? `${hostname().replace(/[^A-Za-z0-9_.-]/g, '_')}-${process.pid}`);
  const log = opts.log ?? ((m: string) => console.error(m));
  const concurrency = opts.concurrency ?? 1;
  const idle: Executor[] = Array.from({ length: concurrency }, () => new Executor());
  const active = new Map<string, Executor>();
  const pub = connect(opts.redis);
  const sub = connect(opts.redis);
  const results = new Queue(RESULT_QUEUE, { connection: bullConnection(opts.redis), prefix });

  sub.on('message', (_channel, message) => {
    const parsed = controlMessageSchema.safeParse(JSON.parse(message));
    if (!parsed.success) return;
    for (const id of parsed.data.promptIds) active.get(id)?.interrupt();
  });
  await sub.subscribe(controlChannel(prefix));

  const relay = (event: ExecutorEvent) => {
    if (!RELAYED.has(event.type)) return;
    if (event.type === 'executing' && event.data.node === null) return;
    const data: Record<string, unknown> = { ...event.data };
    if (event.type === 'preview_image') data.image = { format: event.data.image.format, data: Buffer.from(event.data.image.data).toString('base64') };
    const message: RelayedEvent = { worker: name, type: event.type, data };
    void pub.publish(eventsChannel(prefix), JSON.stringify(message));
  };

  /** Files a run's UI outputs name, read from this worker's folders. */
  const collectFiles = (outputs: RunResult['outputs']): OutputFile[] => {
    const files: OutputFile[] = [];
    for (const ui of Object.values(outputs)) {
      for (const items of Object.values(ui)) {
        for (const item of items) {
          const ref = item as { filename?: unknown; subfolder?: unknown; type?: unknown };
          if (typeof ref?.filename !== 'string' || (ref.type !== 'output' && ref.type !== 'temp')) continue;
          const root = ref.type === 'temp' ? opts.env.tempDir : opts.env.outputDir;
          const subfolder = typeof ref.subfolder === 'string' ? ref.subfolder : '';
          const path = resolve(root, subfolder, ref.filename);
          if (relative(root, path).startsWith('..') || !existsSync(path)) continue;
          files.push({ type: ref.type, subfolder, filename: ref.filename, data: readFileSync(path).toString('base64') });
        }
      }
    }
    return files;
  };

  const run = async (job: PromptJob): Promise<ResultJob> => {
    const base = { promptId: job.promptId, worker: name, prompt: job };
    const missing = missingModels(job.models, opts.env.folders);
    if (missing.length) {
      const message = `worker ${name} cannot run this prompt: ${missing.join('; ')}`;
      log(`resflow worker: ${message}`);
      return { ...base, status: 'error', outputs: {}, messages: errorMessages(job.promptId, message), files: [] };
    }
    const valid = await validatePrompt(job.prompt, opts.registry, { outputs: job.outputs });
    if (!valid.ok) {
      return { ...base, status: 'error', outputs: {}, messages: errorMessages(job.promptId, `worker ${name} found the prompt invalid: ${valid.error.message} ${valid.error.details}`), files: [] };
    }
    const executor = idle.pop();
    if (!executor) throw new Error('no free executor (concurrency exceeded)');
    active.set(job.promptId, executor);
    const messages: ResultJob['messages'] = [];
    const off = executor.events.onAny((event) => {
      if (event.data.prompt_id !== job.promptId) return;
      if (['execution_start', 'execution_cached', 'execution_success', 'execution_error', 'execution_interrupted'].includes(event.type)) {
        // Which worker ran it: ComfyUI clients ignore the extra field, operators find it in history.
        messages.push([event.type, { ...event.data, ...(event.type === 'execution_start' ? { worker: name } : {}) } as Record<string, unknown>]);
      }
      relay(event);
    });
    try {
      const result = await executor.run(valid.graph, { promptId: job.promptId, outputs: job.outputs, extraData: job.extraData });
      const status = result.status === 'success' ? 'success' : result.status === 'interrupted' ? 'interrupted' : 'error';
      return { ...base, status, outputs: result.outputs, messages, files: collectFiles(result.outputs) };
    } finally {
      off();
      active.delete(job.promptId);
      idle.push(executor);
    }
  };

  const worker = new Worker(
    PROMPT_QUEUE,
    async (job: Job) => {
      const data = promptJobSchema.parse(job.data);
      const result = await run(data);
      // The result goes through its own durable queue: the front may be restarting right now.
      await results.add('result', result, { jobId: data.promptId, removeOnComplete: true, removeOnFail: 100 });
    },
    {
      connection: bullConnection(opts.redis),
      prefix,
      concurrency,
      maxStalledCount: opts.maxRetries ?? 2,
      lockDuration: opts.lockDurationMs ?? 30_000,
      stalledInterval: Math.max(1000, Math.floor((opts.lockDurationMs ?? 30_000) / 2)),
      name,
    },
  );
  worker.on('failed', (job, e) => log(`resflow worker ${name}: prompt ${job?.id} failed: ${e.message}`));
  await worker.waitUntilReady();
  log(`resflow worker ${name}: taking prompts from ${opts.redis.host}:${opts.redis.port} (${prefix}), concurrency ${concurrency}`);

  return {
    name,
    async close() {
      for (const executor of active.values()) executor.interrupt();
      await worker.close();
      await results.close();
      sub.disconnect();
      pub.disconnect();
    },
  };
}
