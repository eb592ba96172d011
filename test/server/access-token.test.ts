/**
 * Remote access: bound beyond loopback, every HTTP request and WebSocket handshake needs the access token
 * (header, cookie after a `?token=` login, or the query parameter for sockets); loopback stays token-free.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../../runtime/server/index.js';
import { accessTokenFor, checkAccessToken, TOKEN_COOKIE } from '../../runtime/server/security.js';
import { REPO } from '../nodes/helpers.js';
import { connectWs, getJson, postJson, startTestServer, type TestServer } from './helpers.js';

/** A listen address that is not loopback: all interfaces (reached here through 127.0.0.1). */
const WIDE = '0.0.0.0';

describe('accessTokenFor', () => {
  it('makes a fresh random token beyond loopback, none on loopback, and keeps a given one', () => {
    const a = accessTokenFor(WIDE)!;
    const b = accessTokenFor('192.168.1.20')!;
    expect(a.length).toBeGreaterThanOrEqual(32);
    expect(a).not.toBe(b);
    expect(accessTokenFor('127.0.0.1')).toBeUndefined();
    expect(accessTokenFor('localhost')).toBeUndefined();
    expect(accessTokenFor('::1')).toBeUndefined();
    expect(accessTokenFor(WIDE, 'given-token-0123456789')).toBe('given-token-0123456789');
    expect(accessTokenFor('127.0.0.1', 'given-token-0123456789')).toBe('given-token-0123456789');
    expect(() => accessTokenFor(WIDE, 'short')).toThrow(/at least 16/);
    expect(() => accessTokenFor(WIDE, 'has;semicolon-0123456789')).toThrow(/printable ASCII/);
  });

  it('accepts the token only where it belongs and compares it exactly', () => {
    const t = 'a-token-of-some-length-42';
    const u = (q = '') => new URL(`http://h/queue${q}`);
    expect(checkAccessToken({}, u(), undefined)).toBeUndefined();
    expect(checkAccessToken({}, u(), t)?.status).toBe(401);
    expect(checkAccessToken({ authorization: `Bearer ${t}` }, u(), t)).toBeUndefined();
    expect(checkAccessToken({ authorization: `Bearer ${t}x` }, u(), t)?.status).toBe(401);
    expect(checkAccessToken({ authorization: `Basic ${t}` }, u(), t)?.status).toBe(401);
    expect(checkAccessToken({ 'x-resflow-token': t }, u(), t)).toBeUndefined();
    expect(checkAccessToken({ cookie: `a=1; ${TOKEN_COOKIE}=${t}` }, u(), t)).toBeUndefined();
    expect(checkAccessToken({ cookie: `x${TOKEN_COOKIE}=${t}` }, u(), t)?.status).toBe(401);
    expect(checkAccessToken({}, u(`?token=${t}`), t)).toBeUndefined();
    expect(checkAccessToken({}, u(`?token=${t.slice(0, -1)}`), t)?.status).toBe(401);
  });
});

describe('a server bound beyond loopback', () => {
  let t: TestServer;
  let base: string;
  let token: string;
  beforeAll(async () => {
    t = await startTestServer({ host: WIDE });
    const staticDir = join(t.dir, 'static');
    mkdirSync(staticDir, { recursive: true });
    writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>ResFlow</title>');
    await t.server.close();
    t.server = await startServer({ env: t.env, registry: t.registry, host: WIDE, port: 0, staticDir, log: () => {} });
    token = t.server.accessToken!;
    base = `http://127.0.0.1:${t.server.port}`;
    t.url = base;
  });
  afterAll(async () => {
    await t.close();
  });

  it('generated a token and refuses HTTP requests without it, reads and writes alike', async () => {
    expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const get = await getJson(`${base}/queue`);
    expect(get.status).toBe(401);
    expect(get.body.error.message).toMatch(/access token/);
    expect((await getJson(`${base}/api/object_info`)).status).toBe(401);
    expect((await fetch(`${base}/`)).status).toBe(401);
    const post = await postJson(`${base}/prompt`, { prompt: { '1': { class_type: 'TestInt', inputs: { value: 1 } } } });
    expect(post.status).toBe(401);
    expect(t.server.queue.remaining()).toBe(0);
    expect((await getJson(`${base}/queue`, { headers: { authorization: 'Bearer wrong-token-value-1234567' } })).status).toBe(401);
  });

  it('answers with the token as a bearer header, the custom header or the query parameter', async () => {
    expect((await getJson(`${base}/queue`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    expect((await getJson(`${base}/queue`, { headers: { 'x-resflow-token': token } })).status).toBe(200);
    expect((await getJson(`${base}/queue?token=${token}`)).status).toBe(200);
    const post = await postJson(`${base}/prompt`, { prompt: { '1': { class_type: 'TestInt', inputs: { value: 3 } } } }, { authorization: `Bearer ${token}` });
    // Past the token check it meets graph validation (a graph without an output node is refused as such).
    expect(post.status).toBe(400);
    expect(post.body.error.type).not.toBe('unauthorized');
  });

  it('logs a browser in: ?token= sets an HttpOnly cookie and redirects; the cookie then opens the editor and the API', async () => {
    const login = await fetch(`${base}/?token=${token}`, { redirect: 'manual' });
    expect(login.status).toBe(303);
    expect(login.headers.get('location')).toBe('/');
    const cookie = login.headers.get('set-cookie')!;
    expect(cookie).toMatch(new RegExp(`^${TOKEN_COOKIE}=${token};`));
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const pair = cookie.split(';')[0]!;
    const page = await fetch(`${base}/`, { headers: { cookie: pair } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<title>ResFlow</title>');
    expect((await getJson(`${base}/queue`, { headers: { cookie: pair } })).status).toBe(200);
  });

  it('refuses a WebSocket handshake without the token and accepts it by query, cookie or header', async () => {
    await expect(connectWs(base, 'no-token')).rejects.toThrow(/401/);
    await expect(connectWs(base, 'bad-token', { authorization: 'Bearer nope-nope-nope-nope' })).rejects.toThrow(/401/);
    for (const [id, headers, url] of [
      ['by-cookie', { cookie: `${TOKEN_COOKIE}=${token}` }, base],
      ['by-header', { authorization: `Bearer ${token}` }, base],
    ] as const) {
      const c = await connectWs(url, id, headers);
      const status = await c.waitFor((m) => m.type === 'status');
      expect(status.data.sid).toBe(id);
      c.ws.close();
    }
    // Query parameter: the URL connectWs builds gains `&token=` after clientId.
    const q = await connectWs(`${base}`, `by-query&token=${token}`);
    expect((await q.waitFor((m) => m.type === 'status')).type).toBe('status');
    q.ws.close();
  });
});

describe('a server on loopback', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t.close();
  });

  it('needs no token on HTTP or WebSocket', async () => {
    expect(t.server.accessToken).toBeUndefined();
    expect((await getJson(`${t.url}/queue`)).status).toBe(200);
    const c = await connectWs(t.url, 'loopback');
    expect((await c.waitFor((m) => m.type === 'status')).type).toBe('status');
    c.ws.close();
  });

  it('requires one there too when one is given', async () => {
    const s = await startServer({ env: t.env, registry: t.registry, port: 0, accessToken: 'loopback-token-0123456789', log: () => {} });
    try {
      expect((await getJson(`${s.url}/queue`)).status).toBe(401);
      expect((await getJson(`${s.url}/queue`, { headers: { authorization: 'Bearer loopback-token-0123456789' } })).status).toBe(200);
    } finally {
      await s.close();
    }
  });
});


describe('resflow serve (what npm start runs)', () => {
  /** Starts the server script, returns the first lines it prints once the editor URL is out, and stops it. */
  async function startOutput(args: string[], env: Record<string, string> = {}): Promise<string> {
    const dataDir = mkdtempSync(join(tmpdir(), 'resflow-main-'));
    const child = spawn(process.execPath, [join(REPO, 'bin/resflow.js'), 'serve', '--port', '0', '--no-browser', '--no-demo', '--data-dir', dataDir, ...args], {
      cwd: REPO,
      env: { ...process.env, ...env },
    });
    let out = '';
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no editor URL in: ${out}`)), 60_000);
        const onData = (d: Buffer) => {
          out += d.toString();
          if (/data folder:/.test(out)) (clearTimeout(timer), resolve());
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', (d: Buffer) => (out += d.toString()));
        child.once('exit', (code) => (clearTimeout(timer), reject(new Error(`exited ${code}: ${out}`))));
      });
    } finally {
      child.kill('SIGTERM');
    }
    return out;
  }

  it('prints a generated token and a login link when bound beyond loopback, none on loopback', async () => {
    const wide = await startOutput(['--host', WIDE]);
    const token = /access token: (\S+)/.exec(wide)?.[1];
    expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(wide).toContain(`/?token=${token}`);
    const given = await startOutput(['--host', WIDE], { RESFLOW_TOKEN: 'from-the-environment-123' });
    expect(given).toContain('access token: from-the-environment-123');
    const flag = await startOutput(['--host', WIDE, '--token', 'from-the-flag-0123456789'], { RESFLOW_TOKEN: 'from-the-environment-123' });
    expect(flag).toContain('access token: from-the-flag-0123456789');
    const local = await startOutput([]);
    expect(local).not.toMatch(/token/);
  }, 240_000);
});
