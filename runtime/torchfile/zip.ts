import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';

/**
 * Just enough of the zip format to read PyTorch's checkpoint archives: the central directory (with ZIP64
 * for multi-GB files) and the position of each member's data, so stored tensors can be read in place.
 */

export class ZipError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'ZipError';
  }
}

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate. */
  method: number;
  compressedSize: number;
  size: number;
  /** Absolute offset of the member's (possibly compressed) data. */
  dataOffset: number;
}

const EOCD_SIG = 0x06054b50;
const EOCD64_LOCATOR_SIG = 0x07064b50;
const EOCD64_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const MAX_COMMENT = 0xffff;

function readAt(fd: number, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, offset + done);
    if (n <= 0) break;
    done += n;
  }
  return done === length ? buf : buf.subarray(0, done);
}

function u64(buf: Buffer, at: number): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError('zip offset beyond 2^53');
  return Number(v);
}

export function isZipFile(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const head = readAt(fd, 0, 4);
    return head.length === 4 && head.readUInt32LE(0) === LOCAL_SIG;
  } finally {
    closeSync(fd);
  }
}

/** The members of a zip archive, by name. */
export function readZipDirectory(path: string): Map<string, ZipEntry> {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const tailLength = Math.min(size, 22 + MAX_COMMENT);
    const tail = readAt(fd, size - tailLength, tailLength);
    let eocd = -1;
    for (let i = tail.length - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === EOCD_SIG) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw new ZipError(path, 'not a zip archive (no end-of-central-directory record; truncated?)');
    let count = tail.readUInt16LE(eocd + 10);
    let dirSize = tail.readUInt32LE(eocd + 12);
    let dirOffset = tail.readUInt32LE(eocd + 16);
    const locatorAt = eocd - 20;
    if (locatorAt >= 0 && tail.readUInt32LE(locatorAt) === EOCD64_LOCATOR_SIG) {
      const eocd64 = readAt(fd, u64(tail, locatorAt + 8), 56);
      if (eocd64.length < 56 || eocd64.readUInt32LE(0) !== EOCD64_SIG) throw new ZipError(path, 'broken ZIP64 end-of-central-directory record');
      count = u64(eocd64, 32);
      dirSize = u64(eocd64, 40);
      dirOffset = u64(eocd64, 48);
    }
    if (dirOffset + dirSize > size) throw new ZipError(path, 'central directory lies past the end of the file (truncated?)');
    const dir = readAt(fd, dirOffset, dirSize);
    const entries = new Map<string, ZipEntry>();
    let at = 0;
    for (let i = 0; i < count; i++) {
      if (at + 46 > dir.length || dir.readUInt32LE(at) !== CENTRAL_SIG) throw new ZipError(path, `central directory entry ${i} is malformed`);
      const method = dir.readUInt16LE(at + 10);
      let compressedSize = dir.readUInt32LE(at + 20);
      let entrySize = dir.readUInt32LE(at + 24);
      const nameLength = dir.readUInt16LE(at + 28);
      const extraLength = dir.readUInt16LE(at + 30);
      const commentLength = dir.readUInt16LE(at + 32);
      let localOffset = dir.readUInt32LE(at + 42);
      const name = dir.toString('utf8', at + 46, at + 46 + nameLength);
      // ZIP64 extra field: the 64-bit values present are exactly those whose 32-bit fields are saturated.
      let extra = at + 46 + nameLength;
      const extraEnd = extra + extraLength;
      while (extra + 4 <= extraEnd) {
        const id = dir.readUInt16LE(extra);
        const len = dir.readUInt16LE(extra + 2);
        if (id === 0x0001) {
          let p = extra + 4;
          if (entrySize === 0xffffffff) (entrySize = u64(dir, p)), (p += 8);
          if (compressedSize === 0xffffffff) (compressedSize = u64(dir, p)), (p += 8);
          if (localOffset === 0xffffffff) localOffset = u64(dir, p);
        }
        extra += 4 + len;
      }
      const local = readAt(fd, localOffset, 30);
      if (local.length < 30 || local.readUInt32LE(0) !== LOCAL_SIG) throw new ZipError(path, `member "${name}" has no local header at ${localOffset}`);
      const dataOffset = localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
      if (dataOffset + compressedSize > size) throw new ZipError(path, `member "${name}" ends past the end of the file (truncated?)`);
      entries.set(name, { name, method, compressedSize, size: entrySize, dataOffset });
      at += 46 + nameLength + extraLength + commentLength;
    }
    return entries;
  } finally {
    closeSync(fd);
  }
}

/** A whole member's bytes (small members: the pickle, the version and byte-order markers). */
export function readZipMember(path: string, entry: ZipEntry): Buffer {
  const fd = openSync(path, 'r');
  try {
    const raw = readAt(fd, entry.dataOffset, entry.compressedSize);
    if (entry.method === 0) return raw;
    if (entry.method === 8) return inflateRawSync(raw);
    throw new ZipError(path, `member "${entry.name}" uses compression method ${entry.method}, which is not supported`);
  } finally {
    closeSync(fd);
  }
}
