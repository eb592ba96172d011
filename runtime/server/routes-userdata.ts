import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { HttpError, queryOf, readBody, sendEmpty, sendJson, writeHeaders } from './http.js';
import type { Router } from './router.js';
import { checkRelativePath, resolveDirInside, resolveExistingInside } from './security.js';

export interface UserdataDeps {
  /** `<data dir>/user/default`: ComfyUI keeps one user's files there (workflows/, settings). */
  userDir: string;
  maxBytes: number;
}

const truthy = (v: string | undefined, fallback: boolean) => (v === undefined ? fallback : v === 'true' || v === '1');

/** Segments of a user file path, refusing anything that could leave the user folder. */
function fileSegments(file: string): string[] {
  const segments = checkRelativePath(file, 'file', true);
  if (segments.length === 0) throw new HttpError(400, 'invalid_path', 'The file path is empty');
  return segments;
}

async function walk(dir: string, recurse: boolean, root: string, out: string[]): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (recurse) await walk(full, recurse, root, out);
    } else if (entry.isFile()) out.push(relative(root, full).split(sep).join('/'));
  }
}

async function info(root: string, path: string) {
  const s = await stat(join(root, path));
  return { path, size: s.size, modified: s.mtimeMs };
}

/**
 * ComfyUI's user-data routes, so ComfyUI clients and our editor share saved workflows:
 * `GET /userdata?dir=workflows[&recurse&full_info&split]`, `GET|POST|DELETE /userdata/{file}` (the file
 * path percent-encoded as one segment, e.g. `workflows%2Fmine.json`) and `POST /userdata/{file}/move/{dest}`.
 * Writes are atomic (temporary file, then rename): a failed save never leaves half a workflow.
 */
export function addUserdataRoutes(router: Router, deps: UserdataDeps): void {
  const ensureRoot = async () => {
    await mkdir(deps.userDir, { recursive: true });
    return deps.userDir;
  };

  router.get('/userdata', async ({ res, url }) => {
    const q = queryOf(url);
    if (!q.dir) throw new HttpError(400, 'invalid_request', 'dir is required');
    const root = await ensureRoot();
    const segments = checkRelativePath(q.dir, 'dir', true);
    let dir: string;
    try {
      dir = await resolveExistingInside(root, segments);
    } catch (e) {
      // ComfyUI answers 404 here; an empty list means the same to its clients and keeps browsers'
      // consoles free of a failed request before the first save.
      if (e instanceof HttpError && e.status === 404) return sendJson(res, 200, []);
      throw e;
    }
    const files: string[] = [];
    await walk(dir, truthy(q.recurse, false), dir, files);
    files.sort();
    if (truthy(q.full_info, false)) return sendJson(res, 200, await Promise.all(files.map((f) => info(dir, f))));
    if (truthy(q.split, false)) return sendJson(res, 200, files.map((f) => [f, ...f.split('/')]));
    sendJson(res, 200, files);
  });

  router.get('/userdata/{file}', async ({ res, params }) => {
    const root = await ensureRoot();
    const path = await resolveExistingInside(root, fileSegments(params.file!));
    if (!(await stat(path)).isFile()) throw new HttpError(404, 'not_found', 'File not found');
    const data = await readFile(path);
    writeHeaders(res, 200, { 'content-type': path.endsWith('.json') ? 'application/json' : 'application/octet-stream', 'content-length': data.length, 'x-content-type-options': 'nosniff' });
    res.end(data);
  });

  router.post('/userdata/{file}', async ({ req, res, url, params }) => {
    const q = queryOf(url);
    const segments = fileSegments(params.file!);
    const root = await ensureRoot();
    const body = await readBody(req, deps.maxBytes, 'file');
    const dir = await resolveDirInside(root, segments.slice(0, -1));
    const target = join(dir, segments.at(-1)!);
    const exists = await stat(target).then((s) => s.isFile(), () => false);
    if (exists && !truthy(q.overwrite, true)) throw new HttpError(409, 'file_exists', `${params.file} already exists`);
    await mkdir(dir, { recursive: true });
    const tmp = `${target}.tmp-${process.pid}-${Date.now()}`;
    await writeFile(tmp, body);
    await rename(tmp, target);
    const rel = relative(root, target).split(sep).join('/');
    sendJson(res, 200, truthy(q.full_info, false) ? await info(root, rel) : rel);
  });

  router.add('DELETE', '/userdata/{file}', async ({ res, params }) => {
    const root = await ensureRoot();
    const path = await resolveExistingInside(root, fileSegments(params.file!));
    if (!(await stat(path)).isFile()) throw new HttpError(404, 'not_found', 'File not found');
    await unlink(path);
    sendEmpty(res, 204);
  });

  router.post('/userdata/{file}/move/{dest}', async ({ res, url, params }) => {
    const q = queryOf(url);
    const root = await ensureRoot();
    const source = await resolveExistingInside(root, fileSegments(params.file!));
    const destSegments = fileSegments(params.dest!);
    const dir = await resolveDirInside(root, destSegments.slice(0, -1));
    const target = join(dir, destSegments.at(-1)!);
    const exists = await stat(target).then(() => true, () => false);
    if (exists && !truthy(q.overwrite, false)) throw new HttpError(409, 'file_exists', `${params.dest} already exists`);
    await mkdir(dir, { recursive: true });
    await rename(source, target);
    const rel = relative(root, target).split(sep).join('/');
    sendJson(res, 200, truthy(q.full_info, false) ? await info(root, rel) : rel);
  });
}
