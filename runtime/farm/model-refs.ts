import { createHash } from 'node:crypto';
import { closeSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { MODEL_FOLDERS, type ModelFolder, type ModelFolders } from '../config/model-folders.js';
import type { ApiPrompt } from '../workflow/api-schema.js';
import type { ModelRef } from './protocol.js';

/**
 * Workers find models by name in their own folders; a fingerprint of the content (size, the first and last
 * 64 KiB and 16 evenly spaced 4 KiB samples) makes sure the file behind a name is the one the front server
 * validated against, without hashing gigabytes on every prompt.
 */

const EDGE = 64 * 1024;
const SAMPLE = 4 * 1024;
const SAMPLES = 16;
const memo = new Map<string, string>();

function hashFile(h: ReturnType<typeof createHash>, path: string): void {
  const size = statSync(path).size;
  h.update(`${size}\0`);
  const fd = openSync(path, 'r');
  try {
    const read = (offset: number, length: number) => {
      const buf = Buffer.alloc(Math.max(0, Math.min(length, size - offset)));
      if (buf.length) readSync(fd, buf, 0, buf.length, offset);
      h.update(buf);
    };
    read(0, EDGE);
    for (let i = 1; i <= SAMPLES; i++) read(Math.floor((size * i) / (SAMPLES + 1)), SAMPLE);
    read(Math.max(0, size - EDGE), EDGE);
  } finally {
    closeSync(fd);
  }
}

/** Content fingerprint of a model file, or of every file in a folder-shaped model (ResAdapters). */
export function modelFingerprint(path: string): string {
  const st = statSync(path);
  const key = `${path}:${st.size}:${st.mtimeMs}`;
  const known = memo.get(key);
  if (known) return known;
  const h = createHash('sha256');
  if (st.isDirectory()) {
    for (const name of readdirSync(path).sort()) {
      const full = join(path, name);
      if (!statSync(full).isFile()) continue;
      h.update(`${name}\0`);
      hashFile(h, full);
    }
  } else {
    hashFile(h, path);
  }
  const fp = h.digest('hex').slice(0, 32);
  memo.set(key, fp);
  return fp;
}

const KINDS: ModelFolder[] = (Object.keys(MODEL_FOLDERS) as ModelFolder[]).filter((k) => k !== 'tokenizers');

/** The model files a prompt names: every string input that is a listed model of some kind. */
export function modelRefs(prompt: ApiPrompt, folders: ModelFolders): ModelRef[] {
  const listed = new Map(KINDS.map((k) => [k, new Set(folders.list(k))]));
  const refs = new Map<string, ModelRef>();
  for (const node of Object.values(prompt)) {
    for (const value of Object.values(node.inputs)) {
      if (typeof value !== 'string') continue;
      for (const kind of KINDS) {
        if (!listed.get(kind)!.has(value) || refs.has(`${kind}/${value}`)) continue;
        refs.set(`${kind}/${value}`, { kind, name: value, fingerprint: modelFingerprint(folders.resolve(kind, value)) });
      }
    }
  }
  return [...refs.values()];
}

/** Why this machine cannot run a prompt that names these models; empty when it can. */
export function missingModels(refs: readonly ModelRef[], folders: ModelFolders): string[] {
  const problems: string[] = [];
  for (const ref of refs) {
    const kind = ref.kind as ModelFolder;
    if (!KINDS.includes(kind) || !folders.list(kind).includes(ref.name)) {
      problems.push(`${ref.kind} "${ref.name}" is not in this worker's model folders (${folders.roots.map((r) => join(r, ref.kind)).join(', ')})`);
      continue;
    }
    const here = modelFingerprint(folders.resolve(kind, ref.name));
    if (here !== ref.fingerprint) problems.push(`${ref.kind} "${ref.name}" on this worker differs from the front server's file (fingerprint ${here} vs ${ref.fingerprint})`);
  }
  return problems;
}
