/**
 * A cheap content fingerprint of a model file: size, the first 64 KiB (a safetensors header with every
 * tensor's name, dtype and offsets) and 4 KiB samples spread over the data. Unlike path + mtime it changes
 * when a file is rewritten in place with its mtime preserved (copy tools, archive extraction, sync clients),
 * and it costs a few reads, not a pass over gigabytes.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

const HEAD_BYTES = 64 * 1024;
const SAMPLE_BYTES = 4096;
const SAMPLES = 32;

/** Hex digest (32 chars) of the file's size, header and sampled data. */
export function fileFingerprint(path: string): string {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const h = createHash('sha256');
    h.update(`resflow-fp-v1:${size}:`);
    const buf = Buffer.alloc(Math.max(HEAD_BYTES, SAMPLE_BYTES));
    const read = (pos: number, len: number) => {
      const n = readSync(fd, buf, 0, Math.min(len, Math.max(0, size - pos)), pos);
      h.update(buf.subarray(0, n));
    };
    read(0, HEAD_BYTES);
    if (size > HEAD_BYTES) {
      const span = size - HEAD_BYTES - SAMPLE_BYTES;
      for (let i = 0; i <= SAMPLES; i++) read(HEAD_BYTES + Math.max(0, Math.floor((span * i) / SAMPLES)), SAMPLE_BYTES);
    }
    return h.digest('hex').slice(0, 32);
  } finally {
    closeSync(fd);
  }
}
