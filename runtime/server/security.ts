import { randomBytes, timingSafeEqual } from 'node:crypto';
import { realpath, stat } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { HttpError } from './http.js';

export interface OriginPolicy {
  /** Extra origins (e.g. `http://localhost:5173` for a dev server) allowed besides the server's own. */
  allowedOrigins?: readonly string[];
  /** Host names (besides loopback ones) a browser may reach us by; guards against DNS rebinding. */
  allowedHosts?: readonly string[];
}

export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h) || h === '::ffff:127.0.0.1';
}

function splitHost(host: string): { hostname: string; port: string } | undefined {
  try {
    const u = new URL(`http://${host}`);
    return { hostname: u.hostname.toLowerCase(), port: u.port };
  } catch {
    return undefined;
  }
}

/**
 * Refuses requests a web page on another origin could make: a browser always sends `Origin` on
 * cross-origin requests and WebSocket handshakes, and it must name this very host and port. The Host
 * header itself must be loopback (or explicitly allowed) so a rebinding DNS name cannot pose as us.
 * Requests without Origin (curl, SDKs, same-origin GETs) pass.
 */
export function checkRequestOrigin(headers: IncomingHttpHeaders, policy: OriginPolicy, boundToLoopback: boolean): HttpError | undefined {
  const hostHeader = headers.host;
  const host = hostHeader ? splitHost(hostHeader) : undefined;
  if (hostHeader && !host) return new HttpError(400, 'invalid_host', 'The Host header is malformed');
  const allowedHosts = new Set((policy.allowedHosts ?? []).map((h) => h.toLowerCase()));
  if (host && boundToLoopback && !isLoopbackHost(host.hostname) && !allowedHosts.has(host.hostname)) {
    return new HttpError(403, 'forbidden_host', `Host "${hostHeader}" is not allowed; use http://127.0.0.1 or http://localhost`);
  }
  const origin = headers.origin;
  if (origin === undefined) return undefined;
  if ((policy.allowedOrigins ?? []).includes(origin)) return undefined;
  let o: URL;
  try {
    o = new URL(origin);
  } catch {
    return new HttpError(403, 'forbidden_origin', `Cross-origin request refused (Origin "${origin}" is not a URL)`);
  }
  if ((o.protocol !== 'http:' && o.protocol !== 'https:') || !host) {
    return new HttpError(403, 'forbidden_origin', `Cross-origin request refused (Origin "${origin}")`);
  }
  const defaultPort = o.protocol === 'https:' ? '443' : '80';
  const samePort = (o.port || defaultPort) === (host.port || '80');
  if (o.hostname.toLowerCase() !== host.hostname || !samePort) {
    return new HttpError(403, 'forbidden_origin', `Cross-origin request refused: Origin "${origin}" does not match host "${hostHeader}"`);
  }
  return undefined;
}

const BAD_SEGMENT = /^\.{1,2}$|[\\\0:]|[\u0000-\u001f]/;

/**
 * Checks a client-supplied relative path (a subfolder or a file name) before it touches the disk:
 * no absolute paths, no drive letters, no `..`, no backslashes or control characters, also after one
 * more round of percent-decoding (a double-encoded `%252e%252e` arrives here as `%2e%2e`).
 */
export function checkRelativePath(value: string, what: string, allowSlash: boolean): string[] {
  const variants = [value];
  try {
    const decoded = decodeURIComponent(value);
    if (decoded !== value) variants.push(decoded);
  } catch {
    // not percent-encoded: only the literal form matters
  }
  for (const v of variants) {
    if (isAbsolute(v) || v.startsWith('/') || /^[A-Za-z]:/.test(v)) throw new HttpError(400, 'invalid_path', `The ${what} must be a relative path`, value);
    const segments = v.split('/');
    if (!allowSlash && segments.length > 1) throw new HttpError(400, 'invalid_path', `The ${what} must not contain "/"`, value);
    for (const s of segments) {
      if (s === '' && allowSlash) continue;
      if (s === '' || BAD_SEGMENT.test(s)) throw new HttpError(400, 'invalid_path', `The ${what} contains a forbidden path segment`, value);
    }
  }
  return value.split('/').filter((s) => s.length > 0);
}

function inside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/**
 * The real path of `root/…segments` when it exists and, after following symlinks, is still inside
 * the real root; 404 when missing, 403 when a link points out of the folder.
 */
export async function resolveExistingInside(root: string, segments: readonly string[]): Promise<string> {
  const realRoot = await realpath(root);
  const candidate = resolve(realRoot, ...segments);
  if (!inside(realRoot, candidate)) throw new HttpError(403, 'forbidden_path', 'The path leaves its folder');
  let real: string;
  try {
    real = await realpath(candidate);
  } catch {
    throw new HttpError(404, 'not_found', 'File not found');
  }
  if (!inside(realRoot, real)) throw new HttpError(403, 'forbidden_path', 'The file is a link to outside its folder');
  return real;
}

/** Like `resolveExistingInside` for a directory we may create: existing parts must stay inside the root. */
export async function resolveDirInside(root: string, segments: readonly string[]): Promise<string> {
  const realRoot = await realpath(root);
  let current = realRoot;
  for (const s of segments) {
    current = resolve(current, s);
    try {
      const real = await realpath(current);
      if (!inside(realRoot, real)) throw new HttpError(403, 'forbidden_path', 'The subfolder is a link to outside its folder');
      if (!(await stat(real)).isDirectory()) throw new HttpError(400, 'invalid_path', `"${s}" exists and is not a folder`);
      current = real;
    } catch (e) {
      if (e instanceof HttpError) throw e;
      // missing from here on: mkdir will create plain folders inside `current`
    }
  }
  if (!inside(realRoot, current)) throw new HttpError(403, 'forbidden_path', 'The path leaves its folder');
  return current;
}

/*
 * Remote access is opt-in and authenticated. On loopback the server stays token-free (only this machine's
 * users reach it and the origin checks stop web pages); bound to any other address it requires a token on
 * every HTTP request and WebSocket handshake, because the API runs arbitrary graphs and writes files.
 *
 * A client presents the token as `Authorization: Bearer <t>`, an `X-ResFlow-Token` header, a `token` query
 * parameter (WebSocket clients that cannot set headers), or the cookie a browser receives after opening any
 * page once with `?token=<t>`: the editor then works unchanged, its fetches and its socket carry the cookie.
 */

export const TOKEN_COOKIE = 'resflow_token';
export const TOKEN_ENV = 'RESFLOW_TOKEN';
const MIN_TOKEN_LENGTH = 16;

export function newAccessToken(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * The token a server bound to `host` must require: the one given (flag/env/option), a fresh one when bound
 * beyond loopback, none on loopback unless one was given.
 */
export function accessTokenFor(host: string, given?: string): string | undefined {
  const token = given?.trim();
  if (token) {
    if (token.length < MIN_TOKEN_LENGTH) throw new Error(`The access token must be at least ${MIN_TOKEN_LENGTH} characters long`);
    if (!/^[\x21-\x7e]+$/.test(token) || /[;,"\\]/.test(token)) throw new Error('The access token must be printable ASCII without ; , " or \\');
    return token;
  }
  return isLoopbackHost(host) ? undefined : newAccessToken();
}

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Every place a request may carry the token; `query` is the `token` search parameter. */
function presented(headers: IncomingHttpHeaders, url: URL): string[] {
  const found: string[] = [];
  const auth = headers.authorization;
  if (auth?.toLowerCase().startsWith('bearer ')) found.push(auth.slice(7).trim());
  const custom = headers['x-resflow-token'];
  if (typeof custom === 'string') found.push(custom.trim());
  const cookie = cookieValue(headers.cookie, TOKEN_COOKIE);
  if (cookie) found.push(cookie);
  const query = url.searchParams.get('token');
  if (query) found.push(query);
  return found;
}

/** undefined when no token is required or a valid one came with the request; else the 401 to answer. */
export function checkAccessToken(headers: IncomingHttpHeaders, url: URL, token: string | undefined): HttpError | undefined {
  if (token === undefined) return undefined;
  if (presented(headers, url).some((t) => sameToken(t, token))) return undefined;
  return new HttpError(
    401,
    'unauthorized',
    'This server is reachable from the network and needs its access token: open the editor once with ?token=<token>, ' +
      'or send "Authorization: Bearer <token>" (WebSocket clients may add ?token=<token>)',
  );
}

/** The Set-Cookie value that logs a browser in after it opened a page with a valid `?token=`. */
export function tokenCookie(token: string): string {
  return `${TOKEN_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict`;
}

/** The URL without its `token` parameter, where a browser is sent after the cookie is set. */
export function withoutToken(url: URL): string {
  const clean = new URL(url.href);
  clean.searchParams.delete('token');
  return `${clean.pathname}${clean.search}`;
}
