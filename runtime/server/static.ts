import { createReadStream, existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname } from 'node:path';
import { HttpError, sendText, writeHeaders } from './http.js';
import { checkRelativePath, resolveExistingInside } from './security.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
};

// The editor loads only its own bundle; it talks to this same origin over fetch and the websocket.
const CSP = "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'self'";

/** Serves the built editor (renderer/dist) read-only; `/` is its index.html. */
export async function serveStatic(root: string, req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> {
  if (!existsSync(root)) {
    sendText(res, 503, `The editor has not been built (${root} is missing). Run: npm run build:renderer\n`);
    return;
  }
  let rel: string;
  try {
    rel = decodeURIComponent(pathname);
  } catch {
    throw new HttpError(400, 'invalid_path', 'The request path is not valid percent-encoding');
  }
  if (rel.endsWith('/')) rel += 'index.html';
  const segments = checkRelativePath(rel.replace(/^\/+/, ''), 'path', true);
  const file = await resolveExistingInside(root, segments);
  const info = await stat(file);
  if (!info.isFile()) throw new HttpError(404, 'not_found', 'File not found');
  const ext = extname(file).toLowerCase();
  writeHeaders(res, 200, {
    'content-type': TYPES[ext] ?? 'application/octet-stream',
    'content-length': info.size,
    'cache-control': ext === '.html' ? 'no-cache' : 'public, max-age=0, must-revalidate',
    'content-security-policy': CSP,
    'referrer-policy': 'no-referrer',
  });
  if (req.method === 'HEAD') return void res.end();
  await new Promise<void>((resolve, reject) => {
    const stream = createReadStream(file);
    stream.on('error', reject);
    res.on('close', () => (stream.destroy(), resolve()));
    stream.pipe(res);
  });
}
