import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCoreRegistry } from '../../nodes/core/index.js';
import { createRuntimeEnv, type RuntimeEnv } from '../../nodes/env.js';
import type { NodeRegistry } from '../../nodes/registry.js';
import { redisOptions } from '../../runtime/farm/redis.js';
import { DEMO_CHECKPOINT, ensureDemoModels } from '../../runtime/models/synthetic/demo.js';
import { startServer, type RunningServer } from '../../runtime/server/index.js';
import type { ApiPrompt } from '../../runtime/workflow/api-schema.js';

export const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => ok(port));
    });
  });
}

/** A throwaway redis-server on a loopback port (Debian's package; `.ci/run` installs it). */
export async function startRedis(): Promise<{ url: string; stop(): void }> {
  const which = spawnSync('sh', ['-c', 'command -v redis-server']);
  if (which.status !== 0) throw new Error('redis-server is not installed: the farm tests need it (apt-get install redis-server; .ci/run does this)');
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((ok, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`redis-server did not start: ${out}`)), 10_000);
    proc.stdout!.on('data', (d) => {
      out += String(d);
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        ok();
      }
    });
    proc.once('exit', (code) => fail(new Error(`redis-server exited with ${code}: ${out}`)));
  });
  return { url: `redis://127.0.0.1:${port}`, stop: () => proc.kill('SIGKILL') };
}

export interface WorkerProcess {
  proc: ChildProcess;
  name: string;
  log: string[];
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** A `resflow worker` child process with its own data folder (demo models generated there). */
export async function startWorker(redisUrl: string, prefix: string, name: string, extra: string[] = []): Promise<WorkerProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), `resflow-worker-${name}-`));
  ensureDemoModels(join(dataDir, 'models'));
  const args = ['bin/resflow.js', 'worker', '--redis', redisUrl, '--prefix', prefix, '--data-dir', dataDir, '--threads', '1', '--lock-ms', '2000', '--max-retries', '2', '--name', name, ...extra];
  const proc = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], });
  const log: string[] = [];
  await new Promise<void>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`worker ${name} did not start:\n${log.join('')}`)), 60_000);
    const onData = (d: Buffer) => {
      log.push(String(d));
      if (String(d).includes('taking prompts')) {
        clearTimeout(timer);
        ok();
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('exit', (code) => fail(new Error(`worker ${name} exited with ${code}:\n${log.join('')}`)));
  });
  return {
    proc,
    name,
    log,
    kill: (signal = 'SIGTERM') =>
      new Promise<void>((ok) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return ok();
        proc.once('exit', () => ok());
        proc.kill(signal);
      }),
  };
}

export interface Front {
  server: RunningServer;
  env: RuntimeEnv;
  registry: NodeRegistry;
  url: string;
}

/** The front server in this process, on a free port, in farm mode. */
export async function startFront(redisUrl: string, prefix: string, dataDir: string): Promise<Front> {
  const env = createRuntimeEnv({ dataDir });
  ensureDemoModels(env.folders.modelsDir);
  const registry = createCoreRegistry(env);
  const server = await startServer({ env, registry, port: 0, staticDir: join(dataDir, 'no-static'), log: () => {}, farm: { redis: redisOptions(redisUrl), prefix } });
  return { server, env, registry, url: server.url };
}

export function txt2img(seed: number, opts: { size?: number; steps?: number; ckpt?: string; prefix?: string } = {}): ApiPrompt {
  const size = opts.size ?? 64;
  return {
    '1': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: opts.ckpt ?? DEMO_CHECKPOINT } },
    '2': { class_type: 'CLIPTextEncode', inputs: { clip: ['1', 1], text: `a farm render ${seed}` } },
    '3': { class_type: 'CLIPTextEncode', inputs: { clip: ['1', 1], text: '' } },
    '4': { class_type: 'EmptyLatentImage', inputs: { width: size, height: size, batch_size: 1 } },
    '5': { class_type: 'KSampler', inputs: { model: ['1', 0], positive: ['2', 0], negative: ['3', 0], latent_image: ['4', 0], seed, steps: opts.steps ?? 2, cfg: 5, sampler_name: 'euler', scheduler: 'normal', denoise: 1 } },
    '6': { class_type: 'VAEDecode', inputs: { samples: ['5', 0], vae: ['1', 2] } },
    '7': { class_type: 'SaveImage', inputs: { images: ['6', 0], filename_prefix: opts.prefix ?? `farm${seed}` } },
  };
}

export async function post(url: string, body: unknown): Promise<any> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${url}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

export async function history(front: Front): Promise<Record<string, any>> {
  return (await fetch(`${front.url}/history`)).json() as Promise<Record<string, any>>;
}

/** Polls until `done` holds, failing with `what` after `ms`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, ms = 120_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
