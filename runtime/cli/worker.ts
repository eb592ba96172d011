import { parseArgs } from 'node:util';
import { createNodeRegistry } from '../nodes-api/node-set.js';
import { createRuntimeEnv } from '../nodes-api/env.js';
import { startFarmWorker } from '../farm/worker.js';
import { checkRedis, redisOptions } from '../farm/redis.js';
import { setSessionThreads } from '../graph/session.js';

const HELP = `resflow worker --redis <url> [options]

Runs prompts from a ResFlow farm: a front server started with \`--redis <url>\` queues them in Redis, any number of
workers on any number of machines take them. Models are found by name in this worker's own folders and must be
the same files as the front server's (checked by fingerprint).

  --redis <url>        redis://host:port[/db] (Redis 6.2 or newer)
  --concurrency <n>    prompts run at once by this process (default 1)
  --threads <n>        ONNX Runtime threads per session (default: all cores; on a 2-core machine running two
                       workers, give each --threads 1)
  --device <d>         cpu, webgpu, cuda, dml, coreml or auto (default cpu; falls back to the CPU with a warning)
  --data-dir <dir>     models/, output/, temp/ of this worker (default: $RESFLOW_DATA_DIR or the current folder)
  --models <dir>       extra models root (repeatable)
  --prefix <name>      farm name, when several farms share one Redis (default resflow)
  --name <name>        this worker's name in logs and history (default host:pid)
  --max-retries <n>    times a prompt is picked up again after its worker died, before it fails (default 2)
  --lock-ms <ms>       a worker silent this long is considered dead (default 30000)
`;

export async function workerCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      redis: { type: 'string' },
      concurrency: { type: 'string', default: '1' },
      threads: { type: 'string' },
      'data-dir': { type: 'string' },
      models: { type: 'string', multiple: true, default: [] },
      prefix: { type: 'string' },
      name: { type: 'string' },
      'max-retries': { type: 'string', default: '2' },
      'lock-ms': { type: 'string', default: '30000' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || !values.redis) {
    (values.help ? console.log : console.error)(HELP);
    return values.help ? 0 : 2;
  }
  const int = (name: string, raw: string | undefined, min: number) => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got "${raw}"`);
    return n;
  };
  const concurrency = int('concurrency', values.concurrency, 1);
  if (values.threads !== undefined) setSessionThreads(int('threads', values.threads, 1));
  const redis = redisOptions(values.redis);
  await checkRedis(redis);
  const env = createRuntimeEnv({ dataDir: values['data-dir'], modelRoots: values.models });
  const worker = await startFarmWorker({
    redis,
    ...(values.prefix ? { prefix: values.prefix } : {}),
    ...(values.name ? { name: values.name } : {}),
    env,
    registry: createNodeRegistry(env),
    concurrency,
    maxRetries: int('max-retries', values['max-retries'], 0),
    lockDurationMs: int('lock-ms', values['lock-ms'], 1000),
  });
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  console.error(`resflow worker ${worker.name}: stopping (the running prompt, if any, goes back to the queue)`);
  await worker.close();
  return 0;
}
