import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from './http.js';

export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** Decoded `{name}` segments of the pattern. */
  params: Record<string, string>;
}

export type Handler = (ctx: RouteContext) => void | Promise<void>;

interface Route {
  method: string;
  segments: string[];
  handler: Handler;
}

function split(path: string): string[] {
  return path.split('/').filter((s) => s.length > 0);
}

/**
 * Method + path routing. ComfyUI serves its API both at the root and under `/api` (the frontend uses
 * the latter, older scripts the former), so every route answers on both.
 */
export class Router {
  private readonly routes: Route[] = [];

  add(method: string, pattern: string, handler: Handler): this {
    this.routes.push({ method, segments: split(pattern), handler });
    return this;
  }

  get(pattern: string, handler: Handler): this {
    return this.add('GET', pattern, handler);
  }

  post(pattern: string, handler: Handler): this {
    return this.add('POST', pattern, handler);
  }

  /** The matching handler, or why there is none: `undefined` (no such path) or a 405 for a known path. */
  match(method: string, pathname: string): { handler: Handler; params: Record<string, string> } | HttpError | undefined {
    let parts: string[];
    try {
      parts = split(pathname).map((s) => decodeURIComponent(s));
    } catch {
      return new HttpError(400, 'invalid_path', 'The request path is not valid percent-encoding');
    }
    const candidates = parts[0] === 'api' ? [parts.slice(1), parts] : [parts];
    let pathKnown = false;
    for (const segs of candidates) {
      for (const route of this.routes) {
        const params = matchSegments(route.segments, segs);
        if (!params) continue;
        pathKnown = true;
        if (route.method === method || (method === 'HEAD' && route.method === 'GET')) return { handler: route.handler, params };
      }
    }
    return pathKnown ? new HttpError(405, 'method_not_allowed', `${method} is not allowed on ${pathname}`) : undefined;
  }
}

function matchSegments(pattern: string[], parts: string[]): Record<string, string> | undefined {
  if (pattern.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p.startsWith('{') && p.endsWith('}')) params[p.slice(1, -1)] = parts[i];
    else if (p !== parts[i]) return undefined;
  }
  return params;
}
