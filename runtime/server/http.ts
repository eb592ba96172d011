import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';

/**
 * A request failure with the status and the ComfyUI-style error object the client gets. Thrown from
 * handlers; the router turns it into the response so one bad request never touches server state.
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly details = '',
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }

  body(): Record<string, unknown> {
    return { error: { type: this.type, message: this.message, details: this.details, extra_info: this.extra } };
  }
}

/** Headers every response carries: nothing we serve is meant to be framed or MIME-sniffed. */
const BASE_HEADERS = { 'x-content-type-options': 'nosniff', 'x-frame-options': 'SAMEORIGIN' } as const;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return void res.end();
  const text = JSON.stringify(body);
  res.writeHead(status, { ...BASE_HEADERS, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

export function sendEmpty(res: ServerResponse, status = 200): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { ...BASE_HEADERS, 'content-length': 0 });
  res.end();
}

export function sendText(res: ServerResponse, status: number, text: string, type = 'text/plain; charset=utf-8'): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { ...BASE_HEADERS, 'content-type': type, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function writeHeaders(res: ServerResponse, status: number, headers: Record<string, string | number>): void {
  res.writeHead(status, { ...BASE_HEADERS, ...headers });
}

/**
 * Reads a whole body up to `limit` bytes. Past the limit it stops buffering and throws 413; the
 * router then answers with `connection: close` so the unread rest of an oversized upload is dropped
 * with the socket instead of being read into memory.
 */
export async function readBody(req: IncomingMessage, limit: number, what = 'request body', shownLimit = limit): Promise<Buffer> {
  const tooLarge = () =>
    new HttpError(413, 'payload_too_large', `The ${what} is larger than the limit of ${formatBytes(shownLimit)}`, `limit ${shownLimit} bytes`, { limit: shownLimit });
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, size);
}

/** Parses a JSON body and checks it against `schema`; both failures are 400s that say what was wrong. */
export async function readJson<S extends z.ZodType>(req: IncomingMessage, schema: S, limit: number): Promise<z.output<S>> {
  const raw = await readBody(req, limit);
  let value: unknown;
  try {
    value = raw.length === 0 ? undefined : JSON.parse(raw.toString('utf8'));
  } catch (e) {
    throw new HttpError(400, 'invalid_json', 'The request body is not valid JSON', (e as Error).message);
  }
  return parseOr400(schema, value, 'request body');
}

export function parseOr400<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const details = parsed.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
  throw new HttpError(400, 'invalid_request', `Invalid ${what}`, details, { issues: parsed.error.issues.map((i) => ({ path: i.path.map(String), message: i.message })) });
}

export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${Math.round((n / (1024 * 1024)) * 10) / 10} MB`;
  if (n >= 1024) return `${Math.round((n / 1024) * 10) / 10} KB`;
  return `${n} bytes`;
}

export function queryOf(url: URL): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of url.searchParams) if (!(k in out)) out[k] = v;
  return out;
}
