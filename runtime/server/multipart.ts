import { HttpError } from './http.js';

export interface FormPart {
  name: string;
  /** Present for file fields. */
  filename?: string;
  contentType?: string;
  data: Buffer;
}

const MAX_PARTS = 32;
const MAX_HEADER_BYTES = 8 * 1024;

export function multipartBoundary(contentType: string | undefined): string {
  const type = contentType ?? '';
  if (!/^multipart\/form-data\s*(;|$)/i.test(type)) {
    throw new HttpError(400, 'invalid_content_type', 'Expected a multipart/form-data body', `content-type: ${type || '(none)'}`);
  }
  const m = /;\s*boundary=(?:"([^"]{1,200})"|([^\s;]{1,200}))/i.exec(type);
  const boundary = m?.[1] ?? m?.[2];
  if (!boundary) throw new HttpError(400, 'invalid_content_type', 'The multipart/form-data content type has no boundary');
  return boundary;
}

/** `name="a"; filename="b"` parameters of a Content-Disposition header (quoted or token values). */
function dispositionParams(value: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /;\s*([A-Za-z*]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))/g;
  for (let m = re.exec(value); m; m = re.exec(value)) {
    const key = m[1].toLowerCase();
    let v = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3].trim();
    if (key === 'filename*') {
      // RFC 5987: charset'lang'percent-encoded; browsers send it for non-ASCII names.
      const ext = /^[^']*'[^']*'(.*)$/.exec(v);
      try {
        v = decodeURIComponent(ext ? ext[1] : v);
      } catch {
        continue;
      }
      out.filename = v;
      continue;
    }
    if (!(key in out)) out[key] = v;
  }
  return out;
}

function parseHeaders(block: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of block.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/**
 * Splits a buffered multipart/form-data body into its parts. Bodies are size-limited before this runs,
 * so buffering is bounded; malformed framing is a 400 naming what was wrong.
 */
export function parseMultipart(body: Buffer, boundary: string): FormPart[] {
  const bad = (why: string) => new HttpError(400, 'invalid_multipart', `Malformed multipart body: ${why}`);
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: FormPart[] = [];
  let pos = body.indexOf(delimiter);
  if (pos < 0) throw bad('the boundary never occurs');
  for (;;) {
    pos += delimiter.length;
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) return parts; // closing "--boundary--"
    if (body[pos] !== 0x0d || body[pos + 1] !== 0x0a) throw bad('a boundary is not followed by CRLF');
    pos += 2;
    const headerEnd = body.indexOf('\r\n\r\n', pos);
    if (headerEnd < 0 || headerEnd - pos > MAX_HEADER_BYTES) throw bad('part headers are missing or too long');
    const headers = parseHeaders(body.toString('utf8', pos, headerEnd));
    const dataStart = headerEnd + 4;
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), dataStart);
    if (next < 0) throw bad('the body ends before the closing boundary');
    const disposition = headers['content-disposition'];
    if (!disposition || !/^form-data\s*(;|$)/i.test(disposition)) throw bad('a part has no form-data Content-Disposition');
    const params = dispositionParams(disposition);
    if (params.name === undefined) throw bad('a part has no name');
    parts.push({ name: params.name, filename: params.filename, contentType: headers['content-type'], data: body.subarray(dataStart, next) });
    if (parts.length > MAX_PARTS) throw bad(`more than ${MAX_PARTS} parts`);
    pos = next + 2;
  }
}
