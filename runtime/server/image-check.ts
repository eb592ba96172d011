import sharp from 'sharp';
import { HttpError } from './http.js';

export type ImageFormat = 'png' | 'jpeg' | 'webp' | 'gif';

export const IMAGE_EXTENSIONS: Record<ImageFormat, readonly string[]> = {
  png: ['.png'],
  jpeg: ['.jpg', '.jpeg'],
  webp: ['.webp'],
  gif: ['.gif'],
};

/** The format announced by the first bytes, whatever the file name or declared type claims. */
export function sniffImage(data: Uint8Array): ImageFormat | undefined {
  const b = data;
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 && b[4] === 0x0d && b[5] === 0x0a && b[6] === 0x1a && b[7] === 0x0a) return 'png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP') return 'webp';
  if (b.length >= 6 && (ascii(b, 0, 6) === 'GIF87a' || ascii(b, 0, 6) === 'GIF89a')) return 'gif';
  return undefined;
}

function ascii(b: Uint8Array, start: number, end: number): string {
  return String.fromCharCode(...b.subarray(start, end));
}

/**
 * Accepts only data that is an image by its magic bytes and that libvips can actually decode to the
 * end, so a renamed text file or a truncated PNG is refused at upload instead of failing a render later.
 */
export async function verifyImage(data: Buffer): Promise<{ format: ImageFormat; width: number; height: number }> {
  const format = sniffImage(data);
  if (!format) {
    throw new HttpError(415, 'unsupported_media_type', 'The uploaded file is not an image (expected PNG, JPEG, WebP or GIF)', 'unrecognised file signature');
  }
  try {
    const image = sharp(data, { failOn: 'truncated', limitInputPixels: 16384 * 16384 });
    const meta = await image.metadata();
    // Decoding (shrunk, so memory stays small) is what catches truncated or corrupt pixel data.
    await image.resize(8, 8, { fit: 'fill' }).raw().toBuffer();
    if (!meta.width || !meta.height) throw new Error('image has no size');
    return { format, width: meta.width, height: meta.height };
  } catch (e) {
    throw new HttpError(415, 'unsupported_media_type', `The uploaded ${format.toUpperCase()} file could not be decoded`, (e as Error).message);
  }
}
