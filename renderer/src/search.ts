/**
 * Node search: ranks node types for a query against their display name, class name, category and a few
 * common aliases (words users type for a node that is named otherwise: "resize" for Upscale Image).
 * Spaces, case and punctuation are ignored ("Image Scale" finds ImageScale), word order does not matter,
 * and a small typo per word still matches ("samplr"). Pure, so it is unit-tested without a browser.
 */

export interface SearchEntry {
  name: string;
  display: string;
  category: string;
  description?: string;
  aliases?: readonly string[];
}

/** Names users reach for that the node's own names do not contain. */
export const COMMON_ALIASES: Readonly<Record<string, readonly string[]>> = {
  ImageScale: ['image scale', 'resize', 'image resize', 'scale image'],
  ImageScaleBy: ['resize by', 'scale by'],
  LatentUpscale: ['latent resize', 'latent scale'],
  LatentUpscaleBy: ['latent resize by', 'latent scale by', 'hires fix'],
  KSampler: ['sampler', 'sample', 'generate', 'denoise'],
  KSamplerAdvanced: ['sampler advanced'],
  CheckpointLoaderSimple: ['load model', 'model loader', 'checkpoint', 'ckpt'],
  CLIPTextEncode: ['prompt', 'text encode', 'positive', 'negative'],
  EmptyLatentImage: ['empty latent', 'latent size', 'resolution', 'width height', 'txt2img'],
  VAEDecode: ['decode', 'latent to image'],
  VAEEncode: ['encode', 'image to latent', 'img2img'],
  SaveImage: ['save', 'output', 'export image'],
  PreviewImage: ['preview', 'show image'],
  LoadImage: ['load image', 'input image', 'open image'],
  LoraLoader: ['lora'],
  ControlNetLoader: ['controlnet'],
  ControlNetApply: ['controlnet apply'],
  LoadResAdapter: ['resadapter', 'adapter', 'load adapter'],
  ApplyResAdapter: ['resadapter', 'adapter', 'any resolution'],
};

const compact = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '');
const words = (s: string) =>
  s
    // CamelCase boundaries become word boundaries: "ImageScale" has the words image and scale.
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);

function typoDistance(a: string, b: string, max: number): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      best = Math.min(best, cur[j]!);
    }
    if (best > max) return max + 1;
    prev = cur;
  }
  return prev[b.length]!;
}

/** How well one query word matches one candidate word: 3 exact, 2 prefix, 1 a typo away, 0 none. */
function wordScore(q: string, w: string): number {
  if (q === w) return 3;
  if (w.startsWith(q)) return 2;
  if (q.length >= 4 && typoDistance(q, w.slice(0, Math.max(q.length, Math.min(w.length, q.length + 1))), 1) <= 1) return 1;
  return 0;
}

function isSubsequence(q: string, s: string): boolean {
  let i = 0;
  for (const c of s) if (c === q[i]) i++;
  return i === q.length;
}

/** A relevance score for `entry`, or 0 when it does not match. */
export function scoreEntry(entry: SearchEntry, query: string): number {
  const q = compact(query);
  if (!q) return 1;
  const names = [entry.display, entry.name];
  const aliases = entry.aliases ?? COMMON_ALIASES[entry.name] ?? [];
  let best = 0;
  for (const [i, n] of [...names, ...aliases].entries()) {
    const c = compact(n);
    const weight = i < names.length ? 0 : 5; // an alias ranks just below the node's own name
    if (c === q) best = Math.max(best, 100 - weight);
    else if (c.startsWith(q)) best = Math.max(best, 85 - weight);
    else if (c.includes(q)) best = Math.max(best, 70 - weight);
  }
  if (best > 0) return best;
  // Word by word: every query word must match a word of the names, aliases or category.
  const qWords = words(query);
  const pool = [...names, ...aliases, entry.category].flatMap(words);
  let total = 0;
  for (const qw of qWords) {
    const s = Math.max(0, ...pool.map((w) => wordScore(qw, w)));
    if (s === 0) {
      total = -1;
      break;
    }
    total += s;
  }
  if (total > 0) return 20 + (total / (3 * qWords.length)) * 30;
  if ((entry.description ?? '').toLowerCase().includes(query.trim().toLowerCase())) return 10;
  if (q.length >= 3 && names.some((n) => isSubsequence(q, compact(n)))) return 5;
  return 0;
}

/** Matching entries, best first; ties go to the shorter display name, then alphabetical. */
export function searchNodes<T extends SearchEntry>(entries: readonly T[], query: string, limit = Infinity): T[] {
  return entries
    .map((e) => [scoreEntry(e, query), e] as const)
    .filter(([s]) => s > 0)
    .sort((a, b) => b[0] - a[0] || a[1].display.length - b[1].display.length || a[1].display.localeCompare(b[1].display))
    .slice(0, limit)
    .map(([, e]) => e);
}
