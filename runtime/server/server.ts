import { join } from 'node:path';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';
import type { RuntimeEnv } from '../../nodes/env.js';
import type { NodeRegistry } from '../../nodes/registry.js';
import type { RedisOptions } from 'ioredis';
import type { ExecutorEvents } from '../executor/events.js';
import { Executor } from '../executor/executor.js';
import { FarmQueue } from '../farm/front.js';
import { HttpError, sendJson } from './http.js';
import { PromptQueue } from './prompt-queue.js';
import type { ServerQueue } from './server-queue.js';
import { Router } from './router.js';
import { addFileRoutes } from './routes-files.js';
import { addUserdataRoutes } from './routes-userdata.js';
import { addInfoRoutes } from './routes-info.js';
import { addPromptRoutes } from './routes-prompt.js';
import { accessTokenFor, checkAccessToken, checkRequestOrigin, isLoopbackHost, tokenCookie, withoutToken, type OriginPolicy } from './security.js';
import { serveStatic } from './static.js';
import { DEFAULT_WORKFLOW_FILES, WorkflowLibrary } from './workflows.js';
import { clientIdFrom, WsHub } from './ws-hub.js';

export const DEFAULT_MAX_UPLOAD_BYTES = 50 * 1024 * 1024;
export const DEFAULT_MAX_JSON_BYTES = 32 * 1024 * 1024;

export interface ServerOptions extends OriginPolicy {
  env: RuntimeEnv;
  registry: NodeRegistry;
  /** Loopback by default: the API runs arbitrary graphs and writes files, it is not for the network. */
  host?: string;
  /** 8188 (ComfyUI's) by default; 0 picks a free port. */
  port?: number;
  /** Shared with a caller that wants to watch events or clear the cache; otherwise one is made. */
  executor?: Executor;
  /** The built editor served at `/` (renderer/dist by default). */
  staticDir?: string;
  /** Bundled workflows (the repository's workflows/ by default). */
  workflowsDir?: string;
  defaultWorkflows?: readonly string[];
  /**
   * Required on every request when set. Bound beyond loopback the server always requires one: this one, or a
   * fresh random token (see RunningServer.accessToken). Loopback stays token-free unless one is given.
   */
  accessToken?: string;
  maxUploadBytes?: number;
  maxJsonBytes?: number;
  historyLimit?: number;
  log?: (message: string) => void;
  /** Farm mode: prompts go to workers through Redis instead of running in this process. */
  farm?: { redis: RedisOptions; prefix?: string };
}

export interface RunningServer {
  /** `http://host:port`, with the real port when 0 was asked for. */
  url: string;
  host: string;
  port: number;
  executor: Executor;
  queue: ServerQueue;
  hub: WsHub;
  http: Server;
  /** The token clients must present (undefined on loopback without one). */
  accessToken?: string;
  /** Stops accepting work, interrupts the running prompt, closes sockets and the listener. */
  close(): Promise<void>;
}

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * Starts ResFlow's ComfyUI-compatible HTTP + WebSocket server. Every route answers at `/x` and `/api/x`;
 * the editor is served at `/`. Bad requests are answered with an error and change nothing.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { env, registry } = options;
  const host = options.host ?? '127.0.0.1';
  const maxUploadBytes = options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES;
  const maxJsonBytes = options.maxJsonBytes ?? DEFAULT_MAX_JSON_BYTES;
  const staticDir = options.staticDir ?? `${REPO_ROOT}renderer/dist`;
  const log = options.log ?? ((m: string) => console.log(m));
  const boundToLoopback = isLoopbackHost(host);
  const accessToken = accessTokenFor(host, options.accessToken);
  const features = { supports_preview_metadata: false, max_upload_size: maxUploadBytes };

  const executor = options.executor ?? new Executor();
  // The queue subscribes to executor events before the hub does: see PromptQueue.
  let hub: WsHub | undefined;
  const onChange = () => hub?.broadcastStatus();
  let queue: ServerQueue;
  let events: ExecutorEvents;
  if (options.farm) {
    const farm = await FarmQueue.start({ ...options.farm, env, historyLimit: options.historyLimit, onChange, log });
    queue = farm;
    events = farm.events;
  } else {
    queue = new PromptQueue(executor, onChange, options.historyLimit);
    events = executor.events;
  }
  hub = new WsHub(queue, features);
  const offEvents = events.onAny((event) => hub!.forward(event));
  const workflows = new WorkflowLibrary(options.workflowsDir ?? `${REPO_ROOT}workflows`, registry, options.defaultWorkflows ?? DEFAULT_WORKFLOW_FILES);

  const router = new Router();
  addPromptRoutes(router, { registry, queue, maxJsonBytes });
  addInfoRoutes(router, { env, registry, workflows, features });
  addFileRoutes(router, { env, maxUploadBytes });
  addUserdataRoutes(router, { userDir: join(env.dataDir, 'user', 'default'), maxBytes: maxJsonBytes });

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const forbidden = checkRequestOrigin(req.headers, options, boundToLoopback);
    if (forbidden) throw forbidden;
    const url = new URL(req.url ?? '/', 'http://localhost');
    const denied = checkAccessToken(req.headers, url, accessToken);
    if (denied) throw denied;
    const method = req.method ?? 'GET';
    const found = router.match(method, url.pathname);
    if (found instanceof HttpError) throw found;
    if (found) return found.handler({ req, res, url, params: found.params });
    if (url.pathname === '/api' || url.pathname.startsWith('/api/')) throw new HttpError(404, 'not_found', `No route ${method} ${url.pathname}`);
    if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, 'method_not_allowed', `${method} is not allowed on ${url.pathname}`);
    if (accessToken && url.searchParams.has('token')) {
      // A browser opened the printed link: log it in with a cookie and drop the token from the address bar.
      res.writeHead(303, { location: withoutToken(url), 'set-cookie': tokenCookie(accessToken), 'cache-control': 'no-store', 'content-length': 0 });
      return void res.end();
    }
    return serveStatic(staticDir, req, res, url.pathname);
  };

  const http = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const error = e instanceof HttpError ? e : new HttpError(500, 'internal_error', 'Internal server error', e instanceof Error ? e.message : String(e));
      if (error.status === 500) log(`resflow server: ${req.method} ${req.url} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      // An unread request body (an oversized upload) is dropped with the connection, not read.
      if (!req.complete) res.setHeader('connection', 'close');
      sendJson(res, error.status, error.body());
    });
  });
  http.headersTimeout = 30_000;
  http.requestTimeout = 10 * 60_000;

  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const refuse = (status: number, text: string) => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
    };
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/ws' && url.pathname !== '/api/ws') return refuse(404, 'Not Found');
    const forbidden = checkRequestOrigin(req.headers, options, boundToLoopback) ?? checkAccessToken(req.headers, url, accessToken);
    if (forbidden) return refuse(forbidden.status, forbidden.message);
    wss.handleUpgrade(req, socket, head, (ws) => hub!.attach(ws, clientIdFrom(url.searchParams.get('clientId'))));
  });

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 8188, host, () => {
      http.off('error', reject);
      resolve();
    });
  });
  const port = (http.address() as AddressInfo).port;
  const url = `http://${urlHost(host)}:${port}`;

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await queue.stop();
      offEvents();
      hub!.close();
      wss.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    })());

  return { url, host, port, executor, queue, hub, http, accessToken, close };
}
