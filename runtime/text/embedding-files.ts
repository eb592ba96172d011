// Where ComfyUI finds the file for `embedding:name` (comfy/sd1_clip.py load_embed): every embeddings
// folder and all of its subfolders, the name as written and then with .safetensors/.pt/.bin appended,
// never outside the folder. Reading the vectors is left to the caller (see EmbeddingLookup).

import { readdirSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';

const EXTENSIONS = ['.safetensors', '.pt', '.bin'];

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/**
 * The folders and their subfolders (symlinks followed, each real folder once). ComfyUI walks them as
 * an unordered set; here the order is the given folders first, then depth-first by name, so results
 * are reproducible when two folders hold the same name.
 */
export function embeddingSearchDirs(dirs: readonly string[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const visit = (dir: string): void => {
    let real: string;
    try {
      real = realpathSync(dir);
    } catch {
      return;
    }
    if (seen.has(real)) return;
    seen.add(real);
    out.push(path.resolve(dir));
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const name of names) {
      const child = path.join(dir, name);
      try {
        if (statSync(child).isDirectory()) visit(child);
      } catch {
        // dangling link or unreadable entry: ComfyUI's os.walk skips these too
      }
    }
  };
  for (const dir of dirs) visit(dir);
  return out;
}

/** The embedding file ComfyUI would load for `name`, or undefined. */
export function findEmbeddingFile(dirs: readonly string[], name: string): string | undefined {
  for (const dir of embeddingSearchDirs(dirs)) {
    const candidate = path.resolve(dir, name);
    // A name such as `../x` must not escape the embeddings folder.
    const rel = path.relative(dir, candidate);
    if (rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) continue;
    if (isFile(candidate)) return candidate;
    for (const ext of EXTENSIONS) if (isFile(candidate + ext)) return candidate + ext;
  }
  return undefined;
}
