import { createReadStream } from 'node:fs';
import { access, mkdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { z } from 'zod';
import type { RuntimeEnv } from '../nodes-api/env.js';
import { formatBytes, HttpError, parseOr400, queryOf, readBody, sendJson, writeHeaders } from './http.js';
import { IMAGE_EXTENSIONS, verifyImage } from './image-check.js';
import { multipartBoundary, parseMultipart } from './multipart.js';
import type { Router } from './router.js';
import { checkRelativePath, resolveDirInside, resolveExistingInside } from './security.js';

export type FolderType = 'input' | 'output' | 'temp';

/** Types served as themselves; everything else is a download, so nothing we serve can run script. */
const CONTENT_TYPES: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.wav': 'audio/wav',
  '.mp3': 'audio/mpeg',
  '.flac': 'audio/flac',
};

const viewQuery = z.object({
  filename: z.string({ error: 'filename is required' }).min(1, 'filename is required').max(255),
  subfolder: z.string().max(1024).default(''),
  type: z.enum(['output', 'input', 'temp'], { error: 'type must be output, input or temp' }).default('output'),
});

export function folderFor(env: RuntimeEnv, type: FolderType): string {
  return type === 'input' ? env.inputDir : type === 'output' ? env.outputDir : env.tempDir;
}

export interface FileRouteDeps {
  env: RuntimeEnv;
  maxUploadBytes: number;
}

function contentDisposition(kind: 'inline' | 'attachment', name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

/** A client's upload name reduced to a safe single file name with an extension matching its content. */
function uploadName(raw: string | undefined, format: keyof typeof IMAGE_EXTENSIONS): string {
  const base = (raw ?? '').split(/[\\/]/).pop() ?? '';
  let name = base.replace(/[\u0000-\u001f\u007f:*?"<>|]/g, '_').trim().slice(0, 200);
  if (name === '' || name === '.' || name === '..' || name.startsWith('.')) name = `upload_${Date.now()}`;
  const ext = extname(name).toLowerCase();
  if (!IMAGE_EXTENSIONS[format].includes(ext)) name = `${name}${IMAGE_EXTENSIONS[format][0]}`;
  return name;
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

/** ComfyUI's rule: keep the name unless it is taken, else `name (1).ext`, `name (2).ext`, ... */
async function freeName(dir: string, name: string): Promise<string> {
  if (!(await exists(join(dir, name)))) return name;
  const ext = extname(name);
  const stem = name.slice(0, name.length - ext.length);
  for (let i = 1; i < 100_000; i++) {
    const candidate = `${stem} (${i})${ext}`;
    if (!(await exists(join(dir, candidate)))) return candidate;
  }
  throw new HttpError(409, 'name_exhausted', `Too many files named like "${name}"`);
}

export function addFileRoutes(router: Router, { env, maxUploadBytes }: FileRouteDeps): void {
  router.get('/view', async ({ req, res, url }) => {
    const q = parseOr400(viewQuery, queryOf(url), 'query');
    const sub = checkRelativePath(q.subfolder, 'subfolder', true);
    checkRelativePath(q.filename, 'filename', false);
    const file = await resolveExistingInside(folderFor(env, q.type), [...sub, q.filename]);
    const info = await stat(file);
    if (!info.isFile()) throw new HttpError(404, 'not_found', 'File not found');
    const type = CONTENT_TYPES[extname(file).toLowerCase()];
    writeHeaders(res, 200, {
      'content-type': type ?? 'application/octet-stream',
      'content-length': info.size,
      'content-disposition': contentDisposition(type ? 'inline' : 'attachment', q.filename),
      'cache-control': 'no-cache',
      'content-security-policy': "default-src 'none'; sandbox",
    });
    if (req.method === 'HEAD') return void res.end();
    await new Promise<void>((resolve, reject) => {
      const stream = createReadStream(file);
      stream.on('error', reject);
      res.on('close', () => (stream.destroy(), resolve()));
      stream.pipe(res);
    });
  });

  router.post('/upload/image', async ({ req, res }) => {
    const boundary = multipartBoundary(req.headers['content-type']);
    // Room for the other fields and the multipart framing around a maximum-size image.
    const body = await readBody(req, maxUploadBytes + 64 * 1024, 'upload', maxUploadBytes);
    const parts = parseMultipart(body, boundary);
    const field = (name: string) => parts.find((p) => p.name === name && p.filename === undefined)?.data.toString('utf8');
    const image = parts.find((p) => p.name === 'image');
    if (!image || image.filename === undefined) throw new HttpError(400, 'missing_image', 'The form has no "image" file field');
    if (image.data.length === 0) throw new HttpError(400, 'empty_upload', 'The uploaded image is empty');
    if (image.data.length > maxUploadBytes) {
      throw new HttpError(413, 'payload_too_large', `The image is larger than the limit of ${formatBytes(maxUploadBytes)}`, `${image.data.length} bytes`, { limit: maxUploadBytes });
    }
    const typeValue = field('type') || 'input';
    if (typeValue !== 'input' && typeValue !== 'temp' && typeValue !== 'output') {
      throw new HttpError(400, 'invalid_request', 'type must be input, temp or output', typeValue);
    }
    const subfolder = field('subfolder') ?? '';
    const segments = checkRelativePath(subfolder, 'subfolder', true);
    const overwrite = ['true', '1'].includes((field('overwrite') ?? '').toLowerCase());
    const { format } = await verifyImage(image.data);

    const dir = await resolveDirInside(folderFor(env, typeValue), segments);
    await mkdir(dir, { recursive: true });
    await resolveDirInside(folderFor(env, typeValue), segments); // a racing symlink must not have appeared
    const wanted = uploadName(image.filename, format);
    const name = overwrite ? wanted : await freeName(dir, wanted);
    const target = join(dir, name);
    const tmp = `${target}.upload-${process.pid}-${Date.now()}`;
    await writeFile(tmp, image.data, { flag: 'wx' });
    try {
      await rename(tmp, target);
    } catch (e) {
      await unlink(tmp).catch(() => {});
      throw e;
    }
    sendJson(res, 200, { name, subfolder: segments.join('/'), type: typeValue });
  });
}
