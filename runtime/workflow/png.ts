import { crc32, inflateSync } from 'node:zlib';
import { parseApiPrompt, type ApiPrompt } from './api-schema.js';
import { parseEditorWorkflow, type EditorWorkflow } from './editor-schema.js';
import type { WorkflowIssue } from './issues.js';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const TEXT_CHUNKS = new Set(['tEXt', 'iTXt', 'zTXt']);

export class PngError extends Error {
  override name = 'PngError';
}

export interface PngChunk {
  type: string;
  data: Buffer;
  /** Offset of the chunk's length field in the file. */
  offset: number;
}

export interface PngTextEntry {
  keyword: string;
  text: string;
  chunk: 'tEXt' | 'iTXt' | 'zTXt';
}

export function isPng(data: Uint8Array): boolean {
  return data.length >= 8 && Buffer.from(data.buffer, data.byteOffset, 8).equals(SIGNATURE);
}

/** Splits a PNG into chunks, checking lengths and CRCs so a truncated download fails loudly. */
export function readPngChunks(png: Uint8Array): PngChunk[] {
  const buf = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  if (!isPng(buf)) throw new PngError('not a PNG file (bad signature)');
  const chunks: PngChunk[] = [];
  let offset = 8;
  while (offset < buf.length) {
    if (offset + 12 > buf.length) throw new PngError(`truncated chunk header at byte ${offset}`);
    const length = buf.readUInt32BE(offset);
    const type = buf.toString('latin1', offset + 4, offset + 8);
    const end = offset + 12 + length;
    if (end > buf.length) throw new PngError(`chunk ${type} at byte ${offset} runs past the end of the file`);
    const crc = buf.readUInt32BE(end - 4);
    if (crc32(buf.subarray(offset + 4, end - 4)) !== crc) throw new PngError(`bad CRC in chunk ${type} at byte ${offset}`);
    chunks.push({ type, data: buf.subarray(offset + 8, end - 4), offset });
    offset = end;
    if (type === 'IEND') break;
  }
  if (chunks.at(-1)?.type !== 'IEND') throw new PngError('missing IEND chunk');
  return chunks;
}

/** Writers are supposed to use Latin-1 in tEXt, but plenty put UTF-8 there; accept both. */
function decodeLooseText(bytes: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}

function parseTextChunk(chunk: PngChunk): PngTextEntry | undefined {
  const { data } = chunk;
  const nul = data.indexOf(0);
  if (nul <= 0) return undefined;
  const keyword = data.toString('latin1', 0, nul);
  if (chunk.type === 'tEXt') return { keyword, text: decodeLooseText(data.subarray(nul + 1)), chunk: 'tEXt' };
  if (chunk.type === 'zTXt') return { keyword, text: decodeLooseText(inflateSync(data.subarray(nul + 2))), chunk: 'zTXt' };
  // iTXt: keyword\0 compressed(1) method(1) language\0 translated keyword\0 text
  const compressed = data[nul + 1] === 1;
  const languageEnd = data.indexOf(0, nul + 3);
  const translatedEnd = languageEnd < 0 ? -1 : data.indexOf(0, languageEnd + 1);
  if (translatedEnd < 0) return undefined;
  const body = data.subarray(translatedEnd + 1);
  return { keyword, text: (compressed ? inflateSync(body) : body).toString('utf8'), chunk: 'iTXt' };
}

export function readPngText(png: Uint8Array): PngTextEntry[] {
  const entries: PngTextEntry[] = [];
  for (const chunk of readPngChunks(png)) {
    if (!TEXT_CHUNKS.has(chunk.type)) continue;
    try {
      const entry = parseTextChunk(chunk);
      if (entry) entries.push(entry);
    } catch {
      // A corrupt compressed text chunk should not hide the others.
    }
  }
  return entries;
}

export interface EmbeddedWorkflow {
  prompt?: ApiPrompt;
  workflow?: EditorWorkflow;
  /** Chunks that were present but did not parse; the other one may still be usable. */
  errors: { keyword: 'prompt' | 'workflow'; issues: WorkflowIssue[] }[];
}

/** Reads ComfyUI's `prompt` (API format) and `workflow` (editor format) text chunks, validated. */
export function readWorkflowFromPng(png: Uint8Array): EmbeddedWorkflow {
  const result: EmbeddedWorkflow = { errors: [] };
  for (const entry of readPngText(png)) {
    if (entry.keyword === 'prompt' && result.prompt === undefined) {
      const parsed = parseApiPrompt(entry.text);
      if (parsed.success) result.prompt = parsed.data;
      else result.errors.push({ keyword: 'prompt', issues: [...parsed.error.issues] });
    } else if (entry.keyword === 'workflow' && result.workflow === undefined) {
      const parsed = parseEditorWorkflow(entry.text);
      if (parsed.success) result.workflow = parsed.data;
      else result.errors.push({ keyword: 'workflow', issues: [...parsed.error.issues] });
    }
  }
  return result;
}

function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** JSON with every non-Latin-1 character escaped, so it is valid tEXt and still the same JSON. */
function latin1Json(value: unknown): string {
  return JSON.stringify(value).replace(/[\u0100-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function textChunk(keyword: string, text: string): Buffer {
  if (!/^[\x20-\x7e\xa1-\xff]{1,79}$/.test(keyword)) throw new PngError(`invalid tEXt keyword ${JSON.stringify(keyword)}`);
  if (/[^\x00-\xff]/.test(text)) throw new PngError('tEXt text must be Latin-1');
  return chunk('tEXt', Buffer.concat([Buffer.from(keyword, 'latin1'), Buffer.from([0]), Buffer.from(text, 'latin1')]));
}

/**
 * Returns a copy of the PNG with `prompt` and `workflow` tEXt chunks before IEND, the way ComfyUI's
 * SaveImage writes them; older copies of the chunks being written are dropped so readers see only the new ones.
 */
export function embedWorkflowInPng(png: Buffer, { prompt, workflow }: { prompt?: unknown; workflow?: unknown }): Buffer {
  const chunks = readPngChunks(png);
  const parts: Buffer[] = [SIGNATURE];
  const added: Buffer[] = [];
  const replaced = new Set<string>();
  if (prompt !== undefined) {
    added.push(textChunk('prompt', latin1Json(prompt)));
    replaced.add('prompt');
  }
  if (workflow !== undefined) {
    added.push(textChunk('workflow', latin1Json(workflow)));
    replaced.add('workflow');
  }
  for (const c of chunks) {
    if (TEXT_CHUNKS.has(c.type)) {
      const nul = c.data.indexOf(0);
      if (nul > 0 && replaced.has(c.data.toString('latin1', 0, nul))) continue;
    }
    if (c.type === 'IEND') parts.push(...added);
    parts.push(png.subarray(c.offset, c.offset + 12 + c.data.length));
  }
  return Buffer.concat(parts);
}
