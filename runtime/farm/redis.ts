import type { ConnectionOptions } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';

/**
 * One place that turns `--redis redis://host:port/db` into connection options. BullMQ's workers block on
 * their connections, so every user gets its own; `maxRetriesPerRequest: null` is what BullMQ requires.
 */
export function redisOptions(url: string): RedisOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`--redis: "${url}" is not a URL (expected redis://host:port[/db])`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') throw new Error(`--redis: "${url}" must start with redis:// or rediss://`);
  const db = parsed.pathname.length > 1 ? Number(parsed.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) throw new Error(`--redis: "${parsed.pathname.slice(1)}" is not a database number`);
  return {
    host: parsed.hostname || '127.0.0.1',
    port: parsed.port ? Number(parsed.port) : 6379,
    db,
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
  };
}

export function connect(options: RedisOptions): Redis {
  return new Redis(options);
}

/** Fails fast with a readable message instead of retrying forever against a wrong address. */
export async function checkRedis(options: RedisOptions): Promise<void> {
  const probe = new Redis({ ...options, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  probe.on('error', () => {});
  try {
    await probe.connect();
    const info = await probe.info('server');
    const version = /redis_version:(\S+)/.exec(info)?.[1] ?? '0';
    const [major, minor] = version.split('.').map(Number) as [number, number];
    if (major < 6 || (major === 6 && minor < 2)) throw new Error(`Redis ${version} at ${options.host}:${options.port} is too old: the farm needs Redis 6.2 or newer`);
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new Error(reason.startsWith('Redis ') ? reason : `cannot reach Redis at ${options.host}:${options.port} (${reason})`);
  } finally {
    probe.disconnect();
  }
}

/** The same options in BullMQ's type (it declares its own, structurally looser, RedisOptions). */
export function bullConnection(options: RedisOptions): ConnectionOptions {
  return options as ConnectionOptions;
}
