import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, normalize, relative, resolve, sep } from 'node:path';
import { z } from 'zod';
import { deviceSchema, MODEL_ROLES } from '../graph/devices.js';
import { precisionSchema } from '../graph/precision.js';

/** Weight files people have: safetensors, and PyTorch zip checkpoints read through the restricted unpickler. */
export const WEIGHT_EXTS = ['.safetensors', '.ckpt', '.pt', '.pth', '.bin'] as const;

/** Model kinds and the folder each lives in under a models root (ComfyUI's names plus our own two). */
export const MODEL_FOLDERS = {
  checkpoints: { exts: WEIGHT_EXTS, dirs: false },
  loras: { exts: WEIGHT_EXTS, dirs: false },
  resadapters: { exts: ['.safetensors'], dirs: true },
  controlnet: { exts: WEIGHT_EXTS, dirs: false },
  vae: { exts: WEIGHT_EXTS, dirs: false },
  tokenizers: { exts: [], dirs: true },
  upscale_models: { exts: WEIGHT_EXTS, dirs: false },
  hypernetworks: { exts: ['.pt', '.pth'], dirs: false },
  embeddings: { exts: ['.safetensors', '.pt', '.bin'], dirs: false },
  unet: { exts: WEIGHT_EXTS, dirs: false },
  diffusion_models: { exts: WEIGHT_EXTS, dirs: false },
} as const;

export type ModelFolder = keyof typeof MODEL_FOLDERS;

const ConfigSchema = z
  .object({
    /** Extra models roots, e.g. an existing ComfyUI install's `models/` folder. */
    modelRoots: z.array(z.string()).default([]),
    /** Extra folders holding CLIP vocab.json + merges.txt (e.g. ComfyUI's comfy/sd1_tokenizer). */
    tokenizerDirs: z.array(z.string()).default([]),
    /** Where sessions run (cpu, webgpu, cuda, dml, coreml, auto) and per-model exceptions, e.g. {"vae": "cpu"}. */
    device: deviceSchema.optional(),
    deviceOverrides: z.partialRecord(z.enum(MODEL_ROLES), deviceSchema).optional(),
    /** Default precision of the UNet / ControlNet / VAE sessions (fp32, int8); loader nodes may choose per model. */
    precision: precisionSchema.optional(),
  })
  .strict();

export type ResflowConfig = z.infer<typeof ConfigSchema>;

export const CONFIG_FILE = 'resflow.config.json';

export class ModelPathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelPathError';
  }
}

/** Reads `<dataDir>/resflow.config.json` if present; a malformed file is an error naming the field. */
export function loadConfig(dataDir: string): ResflowConfig {
  const file = join(dataDir, CONFIG_FILE);
  if (!existsSync(file)) return ConfigSchema.parse({});
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ModelPathError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const r = ConfigSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new ModelPathError(`${file}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return r.data;
}

/**
 * The model folders a runtime sees: `<dataDir>/models/<kind>` first, then each configured extra root.
 * Names are relative paths with '/' separators, as ComfyUI lists them; resolving a name never leaves its root.
 */
export class ModelFolders {
  readonly roots: string[];
  readonly tokenizerDirs: string[];

  constructor(
    readonly dataDir: string,
    config: ResflowConfig = loadConfig(dataDir),
    extraRoots: string[] = [],
  ) {
    const base = resolve(dataDir);
    this.roots = [join(base, 'models'), ...extraRoots.map((r) => resolve(r)), ...config.modelRoots.map((r) => resolve(base, r))];
    this.tokenizerDirs = config.tokenizerDirs.map((d) => resolve(base, d));
  }

  get modelsDir(): string {
    return this.roots[0]!;
  }

  folder(kind: ModelFolder, root = this.modelsDir): string {
    return join(root, kind);
  }

  /** Every model of a kind, sorted, without duplicates across roots. */
  list(kind: ModelFolder): string[] {
    const spec = MODEL_FOLDERS[kind];
    const names = new Set<string>();
    for (const root of this.roots) {
      const dir = join(root, kind);
      if (!existsSync(dir)) continue;
      walk(dir, '', (rel, isDir) => {
        if (!isDir) {
          if (!spec.dirs && (spec.exts as readonly string[]).some((e) => rel.toLowerCase().endsWith(e))) names.add(rel);
          return false;
        }
        if (!spec.dirs) return true;
        // Folder-shaped models (ResAdapters, tokenizers) are listed by folder; deeper folders are searched too.
        const full = join(dir, rel);
        if (kind === 'tokenizers' ? existsSync(join(full, 'vocab.json')) : containsSafetensors(full)) {
          names.add(rel);
          return false;
        }
        return true;
      });
    }
    return [...names].sort();
  }

  /** Absolute path of a listed model; refuses absolute names and any name escaping its folder. */
  resolve(kind: ModelFolder, name: string): string {
    if (!name || isAbsolute(name) || name.split(/[\\/]/).includes('..')) {
      throw new ModelPathError(`invalid ${kind} name "${name}": use a name relative to the models/${kind} folder`);
    }
    for (const root of this.roots) {
      const dir = join(root, kind);
      const p = normalize(join(dir, name));
      if (relative(dir, p).startsWith('..')) continue;
      if (existsSync(p)) return p;
    }
    const where = this.roots.map((r) => join(r, kind)).join(', ');
    throw new ModelPathError(`${kind} "${name}" not found (looked in ${where})`);
  }
}

function containsSafetensors(dir: string): boolean {
  try {
    return readdirSync(dir).some((f) => f.endsWith('.safetensors'));
  } catch {
    return false;
  }
}

/** Depth-first walk; `visit` returns true to descend into a directory. */
function walk(dir: string, rel: string, visit: (rel: string, isDir: boolean) => boolean, depth = 0): void {
  if (depth > 8) return;
  let entries: string[];
  try {
    entries = readdirSync(join(dir, rel));
  } catch {
    return;
  }
  for (const e of entries.sort()) {
    if (e.startsWith('.')) continue;
    const r = rel ? `${rel}/${e}` : e;
    let isDir = false;
    try {
      isDir = statSync(join(dir, r)).isDirectory();
    } catch {
      continue;
    }
    if (visit(r.split(sep).join('/'), isDir) && isDir) walk(dir, r, visit, depth + 1);
  }
}
