/**
 * On-disk cache of VAE latents (per image hash and bucket size) and text embeddings (per caption), so that
 * after the first time an image is used at a size, training never runs the VAE or text encoder for it
 * again — in this run or the next. Entries are keyed by a fingerprint of the encoder's behaviour (its output
 * on a fixed probe), so a different VAE, text encoder, LoRA on CLIP or clip skip never reads stale data.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import type { ImageBatch } from '../image/image.js';
import { SafetensorsFile } from '../safetensors/index.js';
import { writeSafetensors } from '../safetensors/writer.js';
import type { Bucket } from './buckets.js';
import type { DatasetItem } from './dataset.js';

export interface Tensor {
  data: Float32Array;
  dims: number[];
}

/** A caption's encoding: the context, and the pooled text embedding for families whose UNet takes one (SDXL's y). */
export interface TextTensor extends Tensor {
  pooled?: Float32Array;
}

export interface DatasetEncoders {
  /** Unscaled VAE latent (posterior mean) of a [1, H, W, 3] image in [0, 1]: [1, C, H/f, W/f]. */
  encodeImage(image: ImageBatch): Promise<Tensor>;
  /** Text-encoder context of a caption: [1, S, D], with the pooled output where the family has one. */
  encodeText(caption: string): Promise<TextTensor>;
}

export function fingerprint(...parts: Array<Float32Array | string>): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(typeof p === 'string' ? p : new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
  return h.digest('hex').slice(0, 16);
}

/** A smooth fixed test pattern: encoders that agree on it are treated as the same encoder. */
function probeImage(): ImageBatch {
  const s = 64;
  const data = new Float32Array(s * s * 3);
  for (let y = 0; y < s; y++) for (let x = 0; x < s; x++) for (let c = 0; c < 3; c++) data[(y * s + x) * 3 + c] = 0.5 + 0.4 * Math.sin((x + 1) * (c + 1) * 0.11 + y * 0.07);
  return { data, shape: [1, s, s, 3] };
}

export async function encoderFingerprints(enc: DatasetEncoders): Promise<{ image: string; text: string }> {
  const [img, txt] = [await enc.encodeImage(probeImage()), await enc.encodeText('a resflow probe caption, 1234')];
  const text = txt.pooled ? fingerprint(txt.data, txt.dims.join('x'), txt.pooled, 'pooled') : fingerprint(txt.data, txt.dims.join('x'));
  return { image: fingerprint(img.data, img.dims.join('x')), text };
}

/** The image resized to cover the bucket and centre-cropped to it, as [1, h, w, 3] floats in [0, 1]. */
export async function loadBucketImage(file: string, bucket: Pick<Bucket, 'width' | 'height'>): Promise<ImageBatch> {
  const raw = await sharp(file, { failOn: 'truncated' })
    .rotate()
    .removeAlpha()
    .toColourspace('srgb')
    .resize(bucket.width, bucket.height, { fit: 'cover', position: 'centre', kernel: 'lanczos3' })
    .raw()
    .toBuffer();
  const data = new Float32Array(raw.length);
  for (let i = 0; i < raw.length; i++) data[i] = raw[i]! / 255;
  return { data, shape: [1, bucket.height, bucket.width, 3] };
}

export interface CacheStats {
  latentHits: number;
  latentMisses: number;
  textHits: number;
  textMisses: number;
}

export class EncodeCache {
  readonly stats: CacheStats = { latentHits: 0, latentMisses: 0, textHits: 0, textMisses: 0 };
  private readonly latentDir: string;
  private readonly textDir: string;

  constructor(
    dir: string,
    private readonly encoders: DatasetEncoders,
    ids: { image: string; text: string },
  ) {
    this.latentDir = join(dir, 'latents', ids.image);
    this.textDir = join(dir, 'text', ids.text);
    mkdirSync(this.latentDir, { recursive: true });
    mkdirSync(this.textDir, { recursive: true });
  }

  static async create(dir: string, encoders: DatasetEncoders): Promise<EncodeCache> {
    return new EncodeCache(dir, encoders, await encoderFingerprints(encoders));
  }

  async latent(item: Pick<DatasetItem, 'file' | 'hash'>, bucket: Pick<Bucket, 'width' | 'height'>): Promise<Tensor> {
    const path = join(this.latentDir, `${item.hash}-${bucket.width}x${bucket.height}.safetensors`);
    const hit = read(path);
    if (hit) {
      this.stats.latentHits++;
      return hit;
    }
    this.stats.latentMisses++;
    const t = await this.encoders.encodeImage(await loadBucketImage(item.file, bucket));
    write(path, t);
    return t;
  }

  async text(caption: string): Promise<TextTensor> {
    const path = join(this.textDir, `${fingerprint(caption)}.safetensors`);
    const hit = read(path);
    if (hit) {
      this.stats.textHits++;
      return hit;
    }
    this.stats.textMisses++;
    const t = await this.encoders.encodeText(caption);
    write(path, t);
    return t;
  }
}

function read(path: string): TextTensor | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const f = SafetensorsFile.open(path);
    const t: TextTensor = { data: f.readFloat32('t'), dims: [...f.info('t').shape] };
    if (f.has('pooled')) t.pooled = f.readFloat32('pooled');
    return t;
  } catch {
    // A damaged entry (disk full, killed mid-copy by another tool) is recomputed, never trusted.
    return undefined;
  }
}

function write(path: string, t: TextTensor): void {
  writeSafetensors(path, {
    t: { dtype: 'F32', shape: t.dims, data: t.data },
    ...(t.pooled ? { pooled: { dtype: 'F32' as const, shape: [t.pooled.length], data: t.pooled } } : {}),
  });
}
