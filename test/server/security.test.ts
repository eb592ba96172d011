import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../../runtime/server/index.js';
import { connectWs, getJson, postJson, startTestServer, type TestServer } from './helpers.js';

let t: TestServer;
let staticDir: string;
beforeAll(async () => {
  t = await startTestServer();
  staticDir = join(t.dir, 'static');
  mkdirSync(join(staticDir, 'assets'), { recursive: true });
  writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>ResFlow</title>');
  writeFileSync(join(staticDir, 'assets', 'app.js'), 'console.log(1)');
  writeFileSync(join(t.dir, 'private.txt'), 'private data');
  symlinkSync(join(t.dir, 'private.txt'), join(staticDir, 'leak.js'));
  // Restarted with a static folder that lives in the test's data dir.
  await t.server.close();
  t.server = await startServer({ env: t.env, registry: t.registry, port: 0, staticDir, log: () => {}, allowedOrigins: ['http://localhost:5173'] });
  t.url = t.server.url;
});
afterAll(async () => {
  await t.close();
});

/** A request with exactly these headers and path (fetch forbids setting Host and normalises paths). */
function raw(path: string, headers: Record<string, string>, method = 'GET', body?: string): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(`${t.url}${path}`, { method, headers }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: text, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('cross-origin protection', () => {
  it('refuses HTTP requests from another origin, GET and POST alike', async () => {
    const get = await raw('/object_info', { origin: 'http://evil.example' });
    expect(get.status).toBe(403);
    expect(JSON.parse(get.body).error.message).toMatch(/Cross-origin request refused/);
    const post = await raw('/prompt', { origin: 'http://evil.example', 'content-type': 'text/plain' }, 'POST', JSON.stringify({ prompt: {} }));
    expect(post.status).toBe(403);
    expect(t.server.queue.remaining()).toBe(0);
    expect((await raw('/queue', { origin: 'null' })).status).toBe(403);
    expect((await raw('/queue', { origin: `http://127.0.0.1:${t.server.port + 1}` })).status).toBe(403);
    expect((await raw('/queue', { origin: 'file://' })).status).toBe(403);
  });

  it('accepts same-origin requests, requests without Origin, and configured origins', async () => {
    expect((await raw('/queue', { origin: t.url })).status).toBe(200);
    expect((await raw('/queue', {})).status).toBe(200);
    expect((await raw('/queue', { origin: 'http://localhost:5173' })).status).toBe(200);
    expect((await raw('/queue', { origin: `http://localhost:${t.server.port}`, host: `localhost:${t.server.port}` })).status).toBe(200);
  });

  it('refuses a non-loopback Host header (DNS rebinding)', async () => {
    const res = await raw('/object_info', { host: `attacker.example:${t.server.port}` });
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body).error.type).toBe('forbidden_host');
    const rebound = await raw('/queue', { host: `attacker.example:${t.server.port}`, origin: `http://attacker.example:${t.server.port}` });
    expect(rebound.status).toBe(403);
  });

  it('refuses cross-origin websocket handshakes', async () => {
    await expect(connectWs(t.url, 'evil', { origin: 'http://evil.example' })).rejects.toThrow(/403/);
    const ok = await connectWs(t.url, 'good', { origin: t.url });
    await ok.waitFor((m) => m.type === 'status');
    ok.close();
  });

  it('accepts the websocket at /api/ws too and 404s other upgrade paths', async () => {
    const { WebSocket } = await import('ws');
    const api = new WebSocket(`${t.url.replace('http', 'ws')}/api/ws?clientId=x`);
    await new Promise((resolve, reject) => (api.once('open', resolve), api.once('error', reject)));
    api.terminate();
    const other = new WebSocket(`${t.url.replace('http', 'ws')}/elsewhere`);
    const status = await new Promise<number>((resolve) => other.once('unexpected-response', (_q, res) => resolve(res.statusCode!)));
    expect(status).toBe(404);
  });
});

describe('editor static files', () => {
  it('serves index.html at / and assets with content types and a CSP', async () => {
    const index = await fetch(`${t.url}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toMatch(/^text\/html/);
    expect(index.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
    expect(await index.text()).toContain('ResFlow');
    expect((await fetch(`${t.url}/assets/app.js`)).headers.get('content-type')).toMatch(/^text\/javascript/);
    expect((await fetch(`${t.url}/missing.js`)).status).toBe(404);
  });

  it('never serves files outside the static folder', async () => {
    for (const path of ['/../private.txt', '/..%2fprivate.txt', '/assets/..%2f..%2fprivate.txt', '/%2e%2e/private.txt', '/assets%5c..%5c..%5cprivate.txt']) {
      const res = await raw(path, {});
      expect([400, 403, 404], path).toContain(res.status);
      expect(res.body).not.toContain('private data');
    }
    const link = await raw('/leak.js', {});
    expect(link.status).toBe(403);
    expect(link.body).not.toContain('private data');
  });

  it('rejects non-GET methods on static paths', async () => {
    expect((await raw('/index.html', {}, 'POST', 'x')).status).toBe(405);
  });
});

describe('robustness', () => {
  it('keeps serving after a burst of bad requests', async () => {
    const bad = [
      postJson(`${t.url}/prompt`, '{'),
      postJson(`${t.url}/prompt`, { prompt: 'not an object' }),
      postJson(`${t.url}/prompt`, { prompt: { '1': { class_type: 'Nope' } } }),
      getJson(`${t.url}/view?filename=../../etc/passwd`),
      getJson(`${t.url}/history?max_items=-1`),
      getJson(`${t.url}/%E0%A4%A`),
      postJson(`${t.url}/queue`, { clear: 'yes' }),
      raw('/object_info', { origin: 'http://evil.example' }),
    ];
    const statuses = (await Promise.all(bad)).map((r) => r.status);
    expect(statuses.every((s) => s >= 400 && s < 500)).toBe(true);
    const ok = await postJson(`${t.url}/prompt`, { prompt: { '1': { class_type: 'TestInt', inputs: { value: 9 } }, '2': { class_type: 'TestShow', inputs: { value: ['1', 0] } } } });
    expect(ok.status).toBe(200);
    await t.server.queue.idle();
    expect((await getJson(`${t.url}/history/${ok.body.prompt_id}`)).body[ok.body.prompt_id].status.status_str).toBe('success');
  });

  it('survives a malformed raw HTTP request', async () => {
    await new Promise<void>((resolve) => {
      const socket = connect(t.server.port, '127.0.0.1', () => socket.end('GARBAGE \x00\x01 HTTP/9\r\n\r\n'));
      socket.on('data', () => {});
      socket.on('close', () => resolve());
      socket.on('error', () => resolve());
    });
    expect((await getJson(`${t.url}/system_stats`)).status).toBe(200);
  });

  it('rejects JSON bodies over the limit', async () => {
    const small = await startServer({ env: t.env, registry: t.registry, port: 0, maxJsonBytes: 1024, log: () => {} });
    try {
      const res = await postJson(`${small.url}/prompt`, { prompt: {}, pad: 'x'.repeat(4096) });
      expect(res.status).toBe(413);
      expect(res.body).toMatchObject({ error: { type: 'payload_too_large' }, node_errors: {} });
    } finally {
      await small.close();
    }
  });
});
