import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { WebSocket } from 'ws';
import { createRuntimeEnv, type RuntimeEnv } from '../../nodes/env.js';
import { createCoreRegistry } from '../../nodes/core/index.js';
import type { NodeRegistry } from '../../nodes/registry.js';
import type { NodeSpec } from '../../nodes/spec.js';
import type { ImageBatch } from '../../runtime/image/image.js';
import { startServer, type RunningServer, type ServerOptions } from '../../runtime/server/index.js';

/** Small real nodes for driving the queue: counters let tests see what ran. */
export function testNodes() {
  const calls = new Map<string, number>();
  const count = (name: string) => calls.set(name, (calls.get(name) ?? 0) + 1);
  const gate = { release: () => {}, wait: Promise.resolve() };
  const specs: NodeSpec[] = [
    {
      name: 'TestInt',
      category: 'test',
      inputs: { required: { value: { type: 'INT', default: 0, min: -1000, max: 1000 } } },
      outputs: [{ type: 'INT' }],
      execute: ({ value }) => (count('TestInt'), [value]),
    },
    {
      name: 'TestSlow',
      category: 'test',
      description: 'Reports progress with a JPEG preview at every step.',
      inputs: { required: { value: { type: 'INT', forceInput: true }, steps: { type: 'INT', default: 3, min: 1, max: 1000 }, ms: { type: 'INT', default: 5, min: 0, max: 60_000 } } },
      outputs: [{ type: 'INT' }],
      async execute({ value, steps, ms }, ctx) {
        count('TestSlow');
        const preview = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#c04' } }).jpeg().toBuffer();
        for (let i = 1; i <= (steps as number); i++) {
          await new Promise((r) => setTimeout(r, ms as number));
          ctx.progress(i, steps as number, { format: 'JPEG', data: preview });
        }
        return [value];
      },
    },
    {
      name: 'TestGate',
      category: 'test',
      description: 'Blocks until the test releases it, so a test can queue behind a running prompt.',
      inputs: { required: { value: { type: 'INT', forceInput: true } } },
      outputs: [{ type: 'INT' }],
      async execute({ value }, ctx) {
        count('TestGate');
        await Promise.race([gate.wait, new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)))]);
        return [value];
      },
    },
    {
      name: 'TestFail',
      category: 'test',
      inputs: { required: { value: { type: 'INT', forceInput: true } } },
      outputs: [{ type: 'INT' }],
      execute: ({ value }) => {
        count('TestFail');
        throw new RangeError(`boom at ${value}`);
      },
    },
    {
      name: 'TestShow',
      category: 'test',
      outputNode: true,
      inputs: { required: { value: { type: '*' } } },
      execute: ({ value }) => (count('TestShow'), { ui: { text: [String(value)] } }),
    },
    {
      name: 'TestSolidImage',
      category: 'test',
      inputs: { required: { width: { type: 'INT', default: 16, min: 1, max: 512 }, height: { type: 'INT', default: 16, min: 1, max: 512 }, shade: { type: 'FLOAT', default: 0.5, min: 0, max: 1 } } },
      outputs: [{ type: 'IMAGE' }],
      execute: ({ width, height, shade }) => {
        count('TestSolidImage');
        const w = width as number;
        const h = height as number;
        const image: ImageBatch = { data: new Float32Array(w * h * 3).fill(shade as number), shape: [1, h, w, 3] };
        return [image];
      },
    },
  ];
  return {
    specs,
    calls,
    gate,
    /** Makes TestGate block until `release()`. */
    closeGate() {
      let release!: () => void;
      gate.wait = new Promise<void>((r) => (release = r));
      gate.release = release;
    },
  };
}

export interface TestServer {
  server: RunningServer;
  env: RuntimeEnv;
  registry: NodeRegistry;
  nodes: ReturnType<typeof testNodes>;
  dir: string;
  url: string;
  close(): Promise<void>;
}

/** A server on a free loopback port with the core nodes plus the test nodes, in a fresh data folder. */
export async function startTestServer(options: Partial<ServerOptions> = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'resflow-server-'));
  const env = createRuntimeEnv({ dataDir: dir });
  const registry = createCoreRegistry(env);
  const nodes = testNodes();
  registry.registerAll(nodes.specs);
  const server = await startServer({ env, registry, port: 0, staticDir: join(dir, 'no-static'), log: () => {}, ...options });
  return {
    server,
    env,
    registry,
    nodes,
    dir,
    url: server.url,
    async close() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function getJson(url: string, init?: RequestInit): Promise<{ status: number; body: any }> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: the tests look at the text
  }
  return { status: res.status, body };
}

export function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  return getJson(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

/** A JSON message (`data`) or, with type 'binary', a binary frame's header fields. */
export type WsMessage = { type: string; data?: any; eventType?: number; imageType?: number; bytes?: number };

/** A websocket client that records every message, JSON or binary, and can wait for one. */
export async function connectWs(url: string, clientId: string, headers: Record<string, string> = {}) {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws?clientId=${clientId}`, { headers });
  const messages: WsMessage[] = [];
  const waiters: { test: (m: WsMessage) => boolean; resolve: (m: WsMessage) => void }[] = [];
  ws.on('message', (data, isBinary) => {
    let msg: WsMessage;
    if (isBinary) {
      const buf = data as Buffer;
      msg = { type: 'binary', eventType: buf.readUInt32BE(0), imageType: buf.readUInt32BE(4), bytes: buf.length - 8 };
    } else msg = JSON.parse(String(data));
    messages.push(msg);
    for (const w of [...waiters]) if (w.test(msg)) (waiters.splice(waiters.indexOf(w), 1), w.resolve(msg));
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`websocket refused with ${res.statusCode}`)));
  });
  return {
    ws,
    messages,
    /** Resolves with the first message (already received or future) after index `from` that passes `test`. */
    waitFor(test: (m: WsMessage) => boolean, timeoutMs = 20_000, from = 0): Promise<WsMessage> {
      const seen = messages.slice(from).find(test);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting; got ${JSON.stringify(messages.map((m) => m.type))}`)), timeoutMs);
        waiters.push({ test, resolve: (m) => (clearTimeout(timer), resolve(m)) });
      });
    },
    close() {
      ws.terminate();
    },
  };
}

/** `executing:3`, `progress:3`, `binary`... for compact sequence checks of one prompt's messages. */
export function sequenceOf(messages: WsMessage[], promptId: string): string[] {
  const out: string[] = [];
  for (const m of messages) {
    if (m.type === 'binary') out.push('binary');
    else if (m.data?.prompt_id === promptId) out.push('node' in m.data ? `${m.type}:${m.data.node ?? 'null'}` : m.type);
  }
  return out;
}

export async function pngBytes(width = 8, height = 8): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: '#38a' } }).png().toBuffer();
}
