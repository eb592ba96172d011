/**
 * A training folder: images with same-name .txt captions, or a captions.jsonl. Scanning hashes every image
 * (the hash keys the latent cache), decodes it once to catch corrupt files (the result is remembered per
 * hash), and assigns it an aspect ratio and the buckets it can fill without upscaling.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import sharp from 'sharp';
import { DatasetConfigError, makeBuckets, nearestAspect, resolutionWeights, type Aspect, type Bucket } from './buckets.js';

export const IMAGE_EXTS = ['.png', '.jpg', '.jpeg', '.webp'];
export const CAPTIONS_JSONL = 'captions.jsonl';

export type ProblemPolicy = 'error' | 'skip';

export interface DatasetOptions {
  folder: string;
  resolutions: readonly number[];
  baseResolution: number;
  aspects: readonly Aspect[];
  /** Bucket sides are multiples of this (64 keeps SD latents divisible through every UNet level). */
  bucketStep: number;
  onProblem: ProblemPolicy;
  /** Where scan results are remembered per image hash. */
  cacheDir: string;
  progress?: (done: number, total: number) => void;
}

export interface DatasetItem {
  file: string;
  hash: string;
  width: number;
  height: number;
  caption: string;
  aspect: Aspect;
}

export interface DatasetReport {
  images: number;
  used: number;
  corrupt: string[];
  missingCaption: string[];
  tooSmall: string[];
  /** captions.jsonl entries naming no image of the folder. */
  orphanCaptions: string[];
  captionSource: 'txt' | 'jsonl';
}

export interface ScannedDataset {
  folder: string;
  items: DatasetItem[];
  buckets: Bucket[];
  /** For each bucket, the items that fill it. */
  pools: number[][];
  baseResolution: number;
  /** Resolutions that some image can fill, with their p(x) ∝ |x − s|² weights (renormalised). */
  resolutions: number[];
  weights: number[];
  report: DatasetReport;
}

export class DatasetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatasetError';
  }
}

interface ScanMeta {
  width?: number;
  height?: number;
  error?: string;
}

function readCaptionsJsonl(path: string): Map<string, string> {
  const out = new Map<string, string>();
  readFileSync(path, 'utf8')
    .split(/\r?\n/)
    .forEach((line, i) => {
      if (!line.trim()) return;
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch (e) {
        throw new DatasetError(`${path}:${i + 1}: not valid JSON (${(e as Error).message})`);
      }
      const file = rec.file ?? rec.file_name ?? rec.image;
      const text = rec.text ?? rec.caption;
      if (typeof file !== 'string' || typeof text !== 'string') {
        throw new DatasetError(`${path}:${i + 1}: each line needs "file" (or "file_name") and "text" (or "caption") strings`);
      }
      out.set(basename(file), text);
    });
  return out;
}

async function probe(file: string, bytes: Buffer): Promise<ScanMeta> {
  try {
    // A full decode: headers alone do not reveal a truncated file.
    const { info } = await sharp(bytes, { failOn: 'truncated' }).rotate().raw().toBuffer({ resolveWithObject: true });
    return { width: info.width, height: info.height };
  } catch (e) {
    return { error: (e as Error).message.split('\n')[0] ?? String(e) };
  }
}

function cachedMeta(dir: string, hash: string): ScanMeta | undefined {
  const p = join(dir, `${hash}.json`);
  if (!existsSync(p)) return undefined;
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as ScanMeta;
  } catch {
    return undefined;
  }
}

function storeMeta(dir: string, hash: string, meta: ScanMeta): void {
  mkdirSync(dir, { recursive: true });
  const p = join(dir, `${hash}.json`);
  const tmp = `${p}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(meta));
  renameSync(tmp, p);
}

const list = (xs: string[], max = 5) => xs.slice(0, max).join(', ') + (xs.length > max ? `, … (${xs.length - max} more)` : '');

export async function scanDataset(o: DatasetOptions): Promise<ScannedDataset> {
  if (!existsSync(o.folder) || !statSync(o.folder).isDirectory()) throw new DatasetError(`dataset folder ${o.folder} does not exist`);
  const files = readdirSync(o.folder)
    .filter((f) => IMAGE_EXTS.includes(extname(f).toLowerCase()) && statSync(join(o.folder, f)).isFile())
    .sort();
  if (!files.length) {
    throw new DatasetError(
      `dataset folder ${o.folder} holds no images (${IMAGE_EXTS.join(', ')}); put images there with same-name .txt captions or a ${CAPTIONS_JSONL}`,
    );
  }
  const buckets = makeBuckets(o.resolutions, o.aspects, o.baseResolution, o.bucketStep);
  const jsonlPath = join(o.folder, CAPTIONS_JSONL);
  const jsonl = existsSync(jsonlPath) ? readCaptionsJsonl(jsonlPath) : undefined;
  const report: DatasetReport = {
    images: files.length,
    used: 0,
    corrupt: [],
    missingCaption: [],
    tooSmall: [],
    orphanCaptions: jsonl ? [...jsonl.keys()].filter((k) => !files.includes(k)) : [],
    captionSource: jsonl ? 'jsonl' : 'txt',
  };
  const metaDir = join(o.cacheDir, 'scan');
  const items: DatasetItem[] = [];
  const tooSmallWhy: string[] = [];
  for (const [i, name] of files.entries()) {
    o.progress?.(i, files.length);
    const file = join(o.folder, name);
    const bytes = readFileSync(file);
    const hash = createHash('sha256').update(bytes).digest('hex');
    let meta = cachedMeta(metaDir, hash);
    if (!meta) storeMeta(metaDir, hash, (meta = await probe(file, bytes)));
    if (meta.error || !meta.width || !meta.height) {
      report.corrupt.push(`${name} (${meta.error ?? 'no size'})`);
      continue;
    }
    const txt = join(o.folder, `${basename(name, extname(name))}.txt`);
    const caption = jsonl?.get(name) ?? (existsSync(txt) ? readFileSync(txt, 'utf8').trim() : undefined);
    if (caption === undefined) {
      report.missingCaption.push(name);
      continue;
    }
    const aspect = nearestAspect(meta.width, meta.height, o.aspects);
    const fits = buckets.some((b) => b.aspect === aspect && meta.width! >= b.width && meta.height! >= b.height);
    if (!fits) {
      const smallest = buckets.filter((b) => b.aspect === aspect).reduce((a, b) => (b.width * b.height < a.width * a.height ? b : a));
      report.tooSmall.push(name);
      tooSmallWhy.push(`${name} is ${meta.width}×${meta.height}, the smallest ${aspect.label} bucket is ${smallest.width}×${smallest.height}`);
      continue;
    }
    items.push({ file, hash, width: meta.width, height: meta.height, caption, aspect });
  }
  o.progress?.(files.length, files.length);

  const problems: string[] = [];
  if (report.corrupt.length) problems.push(`${report.corrupt.length} image(s) cannot be decoded: ${list(report.corrupt)}`);
  if (report.missingCaption.length) {
    const where = jsonl ? `no entry in ${CAPTIONS_JSONL} and no same-name .txt` : 'no same-name .txt file';
    problems.push(`${report.missingCaption.length} image(s) have no caption (${where}): ${list(report.missingCaption)}`);
  }
  if (report.tooSmall.length) problems.push(`${report.tooSmall.length} image(s) are smaller than the smallest bucket of their aspect ratio: ${list(tooSmallWhy, 3)}`);
  if (problems.length && o.onProblem === 'error') {
    throw new DatasetError(`dataset ${o.folder}: ${problems.join('; ')}. Fix or remove them, or set on_problem to "skip"`);
  }
  if (!items.length) throw new DatasetError(`dataset ${o.folder}: none of its ${files.length} image(s) is usable: ${problems.join('; ')}`);
  report.used = items.length;

  const pools = buckets.map((b) => items.flatMap((it, k) => (it.aspect === b.aspect && it.width >= b.width && it.height >= b.height ? [k] : [])));
  const resolutions = [...new Set(buckets.filter((_, k) => pools[k]!.length > 0).map((b) => b.resolution))];
  if (!resolutions.length) throw new DatasetConfigError('no bucket can be filled by the dataset images');
  return { folder: o.folder, items, buckets, pools, baseResolution: o.baseResolution, resolutions, weights: resolutionWeights(resolutions, o.baseResolution), report };
}

/** One line for logs and the node's UI. */
export function describeDataset(d: ScannedDataset): string {
  const r = d.report;
  const skipped = r.corrupt.length + r.missingCaption.length + r.tooSmall.length;
  const parts = [`${r.used} of ${r.images} image(s) used`];
  if (skipped) parts.push(`skipped ${r.corrupt.length} corrupt, ${r.missingCaption.length} without caption, ${r.tooSmall.length} too small`);
  if (r.orphanCaptions.length) parts.push(`${r.orphanCaptions.length} ${CAPTIONS_JSONL} entr${r.orphanCaptions.length === 1 ? 'y names' : 'ies name'} no image`);
  const filled = d.buckets.filter((_, k) => d.pools[k]!.length > 0).length;
  parts.push(`${filled} bucket(s) at resolutions ${d.resolutions.join(', ')} (base ${d.baseResolution})`);
  return parts.join('; ');
}
