import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, parse, relative, resolve } from 'node:path';
import { Queue, QueueEvents, Worker, type Job } from 'bullmq';
import type { Redis, RedisOptions } from 'ioredis';
import type { RuntimeEnv } from '../nodes-api/env.js';
import { ExecutorEvents, type ExecutorEventMap, type ExecutorEventType } from '../executor/events.js';
import { HistoryStore, type HistoryEntry, type QueueTuple } from '../server/history.js';
import type { QueuedPrompt } from '../server/prompt-queue.js';
import type { ServerQueue } from '../server/server-queue.js';
import type { ApiPrompt } from '../workflow/api-schema.js';
import { modelRefs } from './model-refs.js';
import {
  checkFarmName,
  controlChannel,
  DEFAULT_FARM_PREFIX,
  eventsChannel,
  FRONT_PRIORITY,
  NORMAL_PRIORITY,
  PROMPT_QUEUE,
  promptJobSchema,
  relayedEventSchema,
  RESULT_QUEUE,
  resultJobSchema,
  type ControlMessage,
  type OutputFile,
  type PromptJob,
  type ResultJob,
} from './protocol.js';
import { bullConnection, connect } from './redis.js';

export interface FarmFrontOptions {
  redis: RedisOptions;
  prefix?: string;
  env: RuntimeEnv;
  historyLimit?: number;
  /** Called whenever the queue's size changes (the server broadcasts `status`). */
  onChange?: () => void;
  log?: (message: string) => void;
}

interface Tracked {
  tuple: QueueTuple;
  owner: string | undefined;
}

const toTuple = (job: PromptJob): QueueTuple => [job.number, job.promptId, job.prompt as ApiPrompt, job.extraData, job.outputs];

/** Events the front emits itself once results are stored; workers' copies of them are dropped. */
const FRONT_OWNED = new Set(['executed', 'execution_success', 'execution_error', 'execution_interrupted']);

/**
 * The front server's queue in farm mode: prompts are validated here and stored in Redis for the workers; live
 * events from workers are re-emitted on `events` for the websocket bridge; results are collected from a durable
 * queue, their files stored in this server's output folders, and recorded in history. Prompts a worker died on
 * are retried by BullMQ's stalled-job handling; the ones that exhaust their retries are recorded as failed.
 */
export class FarmQueue implements ServerQueue {
  readonly history: HistoryStore;
  readonly events = new ExecutorEvents();
  private readonly pending = new Map<string, Tracked>();
  private readonly running = new Map<string, Tracked>();
  private counter = 0;
  private stopped = false;
  private readonly prefix: string;
  private readonly log: (message: string) => void;
  private readonly onChange: () => void;

  private constructor(
    private readonly opts: FarmFrontOptions,
    private readonly prompts: Queue,
    private readonly failures: QueueEvents,
    private readonly pub: Redis,
    private readonly sub: Redis,
  ) {
    this.history = new HistoryStore(opts.historyLimit ?? 1000);
    this.prefix = opts.prefix ?? DEFAULT_FARM_PREFIX;
    this.log = opts.log ?? ((m) => console.log(m));
    this.onChange = opts.onChange ?? (() => {});
  }

  private results?: Worker;

  static async start(opts: FarmFrontOptions): Promise<FarmQueue> {
    const prefix = checkFarmName('farm prefix', opts.prefix ?? DEFAULT_FARM_PREFIX);
    const prompts = new Queue(PROMPT_QUEUE, { connection: bullConnection(opts.redis), prefix });
    const failures = new QueueEvents(PROMPT_QUEUE, { connection: bullConnection(opts.redis), prefix });
    const pub = connect(opts.redis);
    const sub = connect(opts.redis);
    const farm = new FarmQueue(opts, prompts, failures, pub, sub);
    await farm.recover();
    failures.on('failed', ({ jobId }) => void farm.collectFailure(jobId));
    sub.on('message', (_channel, message) => farm.relay(message));
    await sub.subscribe(eventsChannel(prefix));
    farm.results = new Worker(RESULT_QUEUE, (job) => farm.collectResult(job), { connection: bullConnection(opts.redis), prefix, concurrency: 1 });
    farm.results.on('failed', (job, e) => farm.log(`resflow farm: storing the result of ${job?.id} failed: ${e.message}`));
    await Promise.all([farm.results.waitUntilReady(), failures.waitUntilReady()]);
    return farm;
  }

  /** After a restart: what is queued or running in Redis is ours again; failures recorded while down are collected. */
  private async recover(): Promise<void> {
    for (const [state, into] of [
      [['waiting', 'prioritized', 'delayed'], this.pending],
      [['active'], this.running],
    ] as const) {
      for (const job of await this.prompts.getJobs([...state])) {
        const data = promptJobSchema.safeParse(job?.data);
        if (data.success) into.set(data.data.promptId, this.track(data.data));
        this.counter = Math.max(this.counter, Math.abs(data.success ? data.data.number : 0) + 1);
      }
    }
    for (const job of await this.prompts.getFailed()) if (job?.id) await this.collectFailure(job.id);
  }

  private track(job: PromptJob): Tracked {
    const owner = job.extraData.client_id;
    return { tuple: toTuple(job), owner: typeof owner === 'string' ? owner : undefined };
  }

  nextNumber(front: boolean): number {
    const n = this.counter++;
    return front ? -n : n;
  }

  has(promptId: string): boolean {
    return this.pending.has(promptId) || this.running.has(promptId);
  }

  async enqueue(item: QueuedPrompt): Promise<void> {
    if (this.stopped) throw new Error('the queue is stopped');
    const job: PromptJob = {
      promptId: item.promptId,
      number: item.number,
      prompt: item.prompt,
      extraData: item.extraData,
      outputs: item.outputs,
      models: modelRefs(item.prompt, this.opts.env.folders),
    };
    this.pending.set(item.promptId, this.track(job));
    try {
      await this.prompts.add('prompt', job, { jobId: item.promptId, priority: item.number < 0 ? FRONT_PRIORITY : NORMAL_PRIORITY, removeOnComplete: true, removeOnFail: false });
    } catch (e) {
      this.pending.delete(item.promptId);
      throw e;
    }
    this.onChange();
  }

  remaining(): number {
    return this.pending.size + this.running.size;
  }

  snapshot(): { queue_running: QueueTuple[]; queue_pending: QueueTuple[] } {
    const byNumber = (a: Tracked, b: Tracked) => a.tuple[0] - b.tuple[0];
    return {
      queue_running: [...this.running.values()].sort(byNumber).map((t) => t.tuple),
      queue_pending: [...this.pending.values()].sort(byNumber).map((t) => t.tuple),
    };
  }

  ownerOf(promptId: string): string | undefined {
    return (this.running.get(promptId) ?? this.pending.get(promptId))?.owner;
  }

  delete(ids: readonly string[]): number {
    let n = 0;
    for (const id of ids) {
      if (!this.pending.delete(id)) continue;
      n++;
      void this.prompts.remove(id).catch((e: Error) => this.log(`resflow farm: could not remove ${id}: ${e.message}`));
    }
    if (n) this.onChange();
    return n;
  }

  clear(): number {
    return this.delete([...this.pending.keys()]);
  }

  /** Reaches the worker running the prompt; without an id, every running prompt is stopped (ComfyUI stops "the" one). */
  interrupt(promptId?: string): boolean {
    const ids = promptId === undefined ? [...this.running.keys()] : this.running.has(promptId) ? [promptId] : [];
    if (ids.length === 0) return false;
    const message: ControlMessage = { type: 'interrupt', promptIds: ids };
    void this.pub.publish(controlChannel(this.prefix), JSON.stringify(message));
    return true;
  }

  async idle(): Promise<void> {
    while (this.remaining() > 0 && !this.stopped) await new Promise((r) => setTimeout(r, 100));
  }

  /** Stops listening; queued prompts stay in Redis for the next front server. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.results?.close();
    await this.failures.close();
    await this.prompts.close();
    this.sub.disconnect();
    this.pub.disconnect();
  }

  private emit<K extends ExecutorEventType>(type: K, data: ExecutorEventMap[K]): void {
    this.events.emit(type, data);
  }

  /** A worker's live event: progress, previews, the node being executed. */
  private relay(message: string): void {
    let parsed;
    try {
      parsed = relayedEventSchema.parse(JSON.parse(message));
    } catch {
      return;
    }
    const { type, data } = parsed;
    const promptId = String(data.prompt_id ?? '');
    if (FRONT_OWNED.has(type) || (type === 'executing' && data.node === null)) return;
    if (type === 'execution_start') {
      const tracked = this.pending.get(promptId);
      if (tracked) {
        this.pending.delete(promptId);
        this.running.set(promptId, tracked);
        this.onChange();
      }
    }
    if (type === 'preview_image') {
      const image = data.image as { format: 'JPEG' | 'PNG' | 'WEBP'; data: string };
      this.emit('preview_image', { ...(data as unknown as ExecutorEventMap['preview_image']), image: { format: image.format, data: Buffer.from(image.data, 'base64') } });
      return;
    }
    this.events.emit(type as ExecutorEventType, data as never);
  }

  /** Where a worker's file goes here: the same name unless taken, then a numbered one; never outside the folder. */
  private store(file: OutputFile): { subfolder: string; filename: string } {
    const root = file.type === 'temp' ? this.opts.env.tempDir : this.opts.env.outputDir;
    const target = resolve(root, file.subfolder, file.filename);
    const rel = relative(root, target);
    if (rel.startsWith('..') || rel === '' || resolve(root, rel) !== target) throw new Error(`a worker sent a file outside the ${file.type} folder: ${file.subfolder}/${file.filename}`);
    let path = target;
    const { name, ext } = parse(target);
    for (let i = 1; existsSync(path); i++) path = join(dirname(target), `${name}_${i}${ext}`);
    mkdirSync(dirname(path), { recursive: true });
    const tmp = `${path}.tmp-${process.pid}`;
    writeFileSync(tmp, Buffer.from(file.data, 'base64'));
    renameSync(tmp, path);
    return { subfolder: file.subfolder, filename: parse(path).base };
  }

  private async collectResult(job: Job): Promise<void> {
    const result: ResultJob = resultJobSchema.parse(job.data);
    const renamed = new Map<string, { subfolder: string; filename: string }>();
    for (const file of result.files) renamed.set(`${file.type}/${file.subfolder}/${file.filename}`, this.store(file));
    const outputs: Record<string, Record<string, unknown[]>> = {};
    for (const [node, ui] of Object.entries(result.outputs)) {
      outputs[node] = Object.fromEntries(
        Object.entries(ui).map(([key, items]) => [
          key,
          items.map((item) => {
            const ref = item as { type?: string; subfolder?: string; filename?: string };
            const moved = ref && typeof ref === 'object' ? renamed.get(`${ref.type}/${ref.subfolder ?? ''}/${ref.filename}`) : undefined;
            return moved ? { ...ref, ...moved } : item;
          }),
        ]),
      );
    }
    this.record(result.prompt, result.status === 'success', result.messages, outputs);
    for (const [node, output] of Object.entries(outputs)) this.emit('executed', { node, display_node: node, output, prompt_id: result.promptId });
    const terminal = result.messages.at(-1);
    if (terminal && FRONT_OWNED.has(terminal[0])) this.events.emit(terminal[0] as ExecutorEventType, terminal[1] as never);
    this.emit('executing', { node: null, prompt_id: result.promptId });
    this.finish(result.promptId);
  }

  /** A prompt whose workers kept dying (or that no worker could take) is reported failed, once. */
  private async collectFailure(jobId: string): Promise<void> {
    const job = await this.prompts.getJob(jobId);
    if (!job || (await job.getState()) !== 'failed') return;
    const prompt = promptJobSchema.safeParse(job.data);
    if (prompt.success) {
      const error: ExecutorEventMap['execution_error'] = {
        prompt_id: prompt.data.promptId,
        node_id: '',
        node_type: '',
        executed: [],
        exception_message: `the prompt failed on the farm: ${job.failedReason}`,
        exception_type: 'FarmError',
        traceback: [],
        current_inputs: {},
        current_outputs: [],
        timestamp: Date.now(),
      };
      this.record(prompt.data, false, [['execution_error', { ...error }]], {});
      this.emit('execution_error', error);
      this.emit('executing', { node: null, prompt_id: prompt.data.promptId });
      this.finish(prompt.data.promptId);
    }
    await job.remove().catch(() => {});
  }

  private record(prompt: PromptJob, success: boolean, messages: ResultJob['messages'], outputs: HistoryEntry['outputs']): void {
    const meta: HistoryEntry['meta'] = {};
    for (const id of Object.keys(outputs)) meta[id] = { node_id: id, display_node: id, parent_node: null, real_node_id: id };
    this.history.set(prompt.promptId, {
      prompt: toTuple(prompt),
      outputs,
      status: { status_str: success ? 'success' : 'error', completed: success, messages: messages as HistoryEntry['status']['messages'] },
      meta,
    });
  }

  private finish(promptId: string): void {
    if (this.running.delete(promptId) || this.pending.delete(promptId)) this.onChange();
  }
}
