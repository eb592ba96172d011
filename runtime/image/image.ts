import sharp from 'sharp';

/** ComfyUI's IMAGE: a batch of RGB images, NHWC float32 in [0, 1]. */
export interface ImageBatch {
  data: Float32Array;
  shape: [batch: number, height: number, width: number, channels: number];
}

export function imageCount(img: ImageBatch): number {
  return img.shape[0];
}

/** One image of a batch as 8-bit interleaved RGB(A) bytes (rounding as ComfyUI's clip(255·x)). */
export function imageBytes(img: ImageBatch, index: number): Uint8Array {
  const [, h, w, c] = img.shape;
  const n = h * w * c;
  const out = new Uint8Array(n);
  const base = index * n;
  for (let i = 0; i < n; i++) {
    const v = img.data[base + i]! * 255;
    out[i] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
  }
  return out;
}

export async function imageToPng(img: ImageBatch, index: number, compressionLevel = 4): Promise<Buffer> {
  const [, h, w, c] = img.shape;
  return sharp(Buffer.from(imageBytes(img, index).buffer), { raw: { width: w, height: h, channels: c as 3 | 4 } })
    .png({ compressionLevel })
    .toBuffer();
}

export async function imageToJpeg(img: ImageBatch, index: number, quality = 80): Promise<Buffer> {
  const [, h, w, c] = img.shape;
  return sharp(Buffer.from(imageBytes(img, index).buffer), { raw: { width: w, height: h, channels: c as 3 | 4 } })
    .removeAlpha()
    .jpeg({ quality })
    .toBuffer();
}

/** Decodes any image sharp reads (PNG, JPEG, WebP...) into a one-image RGB batch. */
export async function decodeImage(input: Buffer | string): Promise<ImageBatch> {
  const { data, info } = await sharp(input).rotate().removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i]! / 255;
  return { data: out, shape: [1, info.height, info.width, info.channels] };
}

export const UPSCALE_METHODS = ['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos'] as const;
export type UpscaleMethod = (typeof UPSCALE_METHODS)[number];

const KERNEL: Record<UpscaleMethod, 'nearest' | 'linear' | 'mitchell' | 'cubic' | 'lanczos3'> = {
  'nearest-exact': 'nearest',
  bilinear: 'linear',
  area: 'mitchell',
  bicubic: 'cubic',
  lanczos: 'lanczos3',
};

/** Resizes every image of a batch (crop 'center' keeps the aspect by cropping, 'disabled' stretches). */
export async function scaleImage(img: ImageBatch, width: number, height: number, method: UpscaleMethod, crop: 'disabled' | 'center'): Promise<ImageBatch> {
  const [b, h, w, c] = img.shape;
  if (width === w && height === h) return img;
  const out = new Float32Array(b * height * width * c);
  for (let i = 0; i < b; i++) {
    const raw = await sharp(Buffer.from(imageBytes(img, i).buffer), { raw: { width: w, height: h, channels: c as 3 | 4 } })
      .resize(width, height, { kernel: KERNEL[method], fit: crop === 'center' ? 'cover' : 'fill', position: 'centre' })
      .raw()
      .toBuffer();
    for (let k = 0; k < raw.length; k++) out[i * raw.length + k] = raw[k]! / 255;
  }
  return { data: out, shape: [b, height, width, c] };
}

/**
 * Lays images out in a grid (row-major), each cell the size of the largest image, `gap` pixels of
 * background between cells. Used to put base and ResAdapter renders side by side.
 */
export function imageGrid(images: ImageBatch[], columns: number, gap = 8, background = 1): ImageBatch {
  const cells: Array<{ img: ImageBatch; i: number }> = [];
  for (const img of images) for (let i = 0; i < img.shape[0]; i++) cells.push({ img, i });
  if (!cells.length) throw new Error('image grid: no images');
  const cols = Math.max(1, Math.min(columns, cells.length));
  const rows = Math.ceil(cells.length / cols);
  const cellH = Math.max(...cells.map((c) => c.img.shape[1]));
  const cellW = Math.max(...cells.map((c) => c.img.shape[2]));
  const H = rows * cellH + (rows - 1) * gap;
  const W = cols * cellW + (cols - 1) * gap;
  const out = new Float32Array(H * W * 3).fill(background);
  cells.forEach(({ img, i }, k) => {
    const [, h, w, c] = img.shape;
    const oy = Math.floor(k / cols) * (cellH + gap) + Math.floor((cellH - h) / 2);
    const ox = (k % cols) * (cellW + gap) + Math.floor((cellW - w) / 2);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const src = ((i * h + y) * w + x) * c;
        const dst = ((oy + y) * W + ox + x) * 3;
        out[dst] = img.data[src]!;
        out[dst + 1] = img.data[src + 1]!;
        out[dst + 2] = img.data[src + 2]!;
      }
    }
  });
  return { data: out, shape: [1, H, W, 3] };
}
