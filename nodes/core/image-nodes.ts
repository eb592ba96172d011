import { existsSync, mkdirSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { decodeImage, imageGrid, imageToPng, type ImageBatch } from '../../runtime/image/image.js';
import { IMAGE_UPSCALE_METHODS, type UpscaleMethodName } from '../../runtime/image/upscale.js';
import { imageScale } from './image-ops-nodes.js';
import { loadImageMask } from '../../runtime/image/load-mask.js';
import { embedWorkflowInPng } from '../../runtime/workflow/png.js';
import type { RuntimeEnv } from '../env.js';
import type { NodeSpec } from '../spec.js';

const IMAGE_EXTS = ['.png', '.jpg', '.jpeg', '.webp'];

/** Files a LoadImage combo offers: images directly in the input folder (and subfolders), sorted. */
export function listInputImages(inputDir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string, depth: number) => {
    if (depth > 4) return;
    let entries: string[] = [];
    try {
      entries = readdirSync(join(inputDir, rel));
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.startsWith('.')) continue;
      const r = rel ? `${rel}/${e}` : e;
      if (statSync(join(inputDir, r)).isDirectory()) walk(r, depth + 1);
      else if (IMAGE_EXTS.some((x) => e.toLowerCase().endsWith(x))) out.push(r);
    }
  };
  walk('', 0);
  return out.sort();
}

/** Resolves `name` inside `root`, refusing anything that would land outside it. */
export function insideFolder(root: string, name: string, what: string): string {
  const p = resolve(root, name);
  const rel = relative(root, p);
  if (rel.startsWith('..') || resolve(root, rel) !== p || rel === '') throw new Error(`${what} "${name}" is outside its folder`);
  return p;
}

/**
 * ComfyUI's naming: `<prefix>_<counter:05>_.png` in `<folder>/<subfolder of prefix>`, counter one above the
 * highest already there, so repeated runs never overwrite earlier images.
 */
export function nextImagePath(folder: string, prefix: string): { dir: string; subfolder: string; base: string; counter: number } {
  const full = insideFolder(folder, `${prefix}_`, 'filename prefix');
  const dir = dirname(full);
  const base = full.slice(dir.length + 1, -1);
  mkdirSync(dir, { recursive: true });
  const re = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}_(\\d{5,})_`);
  let max = 0;
  for (const f of readdirSync(dir)) {
    const m = re.exec(f);
    if (m) max = Math.max(max, Number(m[1]));
  }
  return { dir, subfolder: relative(folder, dir).split('\\').join('/'), base, counter: max + 1 };
}

async function saveImages(images: ImageBatch, folder: string, type: 'output' | 'temp', prefix: string, meta: { prompt?: unknown; extra?: Record<string, unknown> | null }) {
  const { dir, subfolder, base, counter } = nextImagePath(folder, prefix);
  const results: Array<{ filename: string; subfolder: string; type: string }> = [];
  for (let i = 0; i < images.shape[0]; i++) {
    let png = await imageToPng(images, i);
    if (meta.prompt !== undefined || meta.extra) {
      png = embedWorkflowInPng(png, { prompt: meta.prompt, workflow: meta.extra?.workflow });
    }
    const filename = `${base}_${String(counter + i).padStart(5, '0')}_.png`;
    const target = join(dir, filename);
    const tmp = `${target}.tmp-${process.pid}`;
    writeFileSync(tmp, png);
    renameSync(tmp, target);
    results.push({ filename, subfolder, type });
  }
  return results;
}

export function imageNodes(env: RuntimeEnv): NodeSpec[] {
  return [
    {
      name: 'LoadImage',
      displayName: 'Load Image',
      category: 'image',
      description: 'Loads an image from the input folder (uploads land there).',
      inputs: { required: { image: { type: 'COMBO', options: () => listInputImages(env.inputDir), image_upload: true } } },
      outputs: [{ type: 'IMAGE' }, { type: 'MASK' }],
      isChanged: ({ image }) => {
        const p = join(env.inputDir, String(image));
        return existsSync(p) ? statSync(p).mtimeMs : NaN;
      },
      async execute({ image }) {
        const path = insideFolder(env.inputDir, String(image), 'image');
        const img = await decodeImage(path);
        const [, h, w] = img.shape;
        // ComfyUI's mask output: 1 - alpha (painted-out areas are 1), zeros without an alpha channel.
        const alpha = await loadImageMask(path, 'alpha');
        const mask = alpha.shape[1] === h && alpha.shape[2] === w ? alpha : { data: new Float32Array(h * w), shape: [1, h, w] };
        return [img, mask];
      },
    },
    {
      name: 'SaveImage',
      displayName: 'Save Image',
      category: 'image',
      description: 'Saves PNGs to the output folder with the prompt and workflow embedded (ComfyUI can open them).',
      inputs: {
        required: { images: { type: 'IMAGE' }, filename_prefix: { type: 'STRING', default: 'ResFlow' } },
        hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' },
      },
      outputs: [],
      outputNode: true,
      async execute({ images, filename_prefix, prompt, extra_pnginfo }) {
        const saved = await saveImages(images as ImageBatch, env.outputDir, 'output', String(filename_prefix), {
          prompt,
          extra: extra_pnginfo as Record<string, unknown> | null,
        });
        return { ui: { images: saved } };
      },
    },
    {
      name: 'PreviewImage',
      displayName: 'Preview Image',
      category: 'image',
      description: 'Shows images without keeping them (written to the temp folder).',
      inputs: { required: { images: { type: 'IMAGE' } }, hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' } },
      outputs: [],
      outputNode: true,
      async execute({ images }) {
        const saved = await saveImages(images as ImageBatch, env.tempDir, 'temp', `ResFlow_temp_${Math.random().toString(36).slice(2, 7)}`, {});
        return { ui: { images: saved } };
      },
    },
    {
      name: 'ImageScale',
      displayName: 'Upscale Image',
      category: 'image/upscaling',
      inputs: {
        required: {
          image: { type: 'IMAGE' },
          upscale_method: { type: 'COMBO', options: IMAGE_UPSCALE_METHODS },
          width: { type: 'INT', default: 512, min: 0, max: 16384, step: 1 },
          height: { type: 'INT', default: 512, min: 0, max: 16384, step: 1 },
          crop: { type: 'COMBO', options: ['disabled', 'center'] },
        },
      },
      outputs: [{ type: 'IMAGE' }],
      execute: ({ image, upscale_method, width, height, crop }) => [imageScale(image as ImageBatch, upscale_method as UpscaleMethodName, Number(width), Number(height), crop as 'disabled' | 'center')],
    },
    {
      name: 'ImageGrid',
      displayName: 'Image Grid',
      category: 'image',
      description: 'Composes images side by side (e.g. with and without ResAdapter) into one image.',
      inputs: {
        required: { images_a: { type: 'IMAGE' }, columns: { type: 'INT', default: 2, min: 1, max: 64 }, gap: { type: 'INT', default: 8, min: 0, max: 256 } },
        optional: { images_b: { type: 'IMAGE' }, images_c: { type: 'IMAGE' }, images_d: { type: 'IMAGE' } },
      },
      outputs: [{ type: 'IMAGE' }],
      execute({ images_a, images_b, images_c, images_d, columns, gap }) {
        const list = [images_a, images_b, images_c, images_d].filter((x): x is ImageBatch => Boolean(x));
        return [imageGrid(list, Number(columns), Number(gap))];
      },
    },
  ];
}
