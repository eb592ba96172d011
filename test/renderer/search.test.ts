import { describe, expect, it } from 'vitest';
import { createCoreRegistry } from '../../nodes/core/index.js';
import { createRuntimeEnv } from '../../nodes/env.js';
import { searchNodes, type SearchEntry } from '../../renderer/src/search.js';

const registry = createCoreRegistry(createRuntimeEnv({ dataDir: '/nonexistent-resflow-search' }));
const entries: SearchEntry[] = registry.names().map((name) => {
  const def = registry.get(name)!;
  return { name, display: def.displayName, category: def.spec.category, description: def.spec.description ?? '' };
});
const top = (q: string, n = 3) => searchNodes(entries, q, n).map((e) => e.name);

describe('node search', () => {
  it('"Image Scale" finds Upscale Image (class ImageScale) first', () => {
    expect(registry.get('ImageScale')!.displayName).toBe('Upscale Image');
    expect(top('Image Scale', 1)).toEqual(['ImageScale']);
    expect(top('image scale')[0]).toBe('ImageScale');
  });

  it('matches display names, class names and aliases, ranked', () => {
    expect(top('KSampler', 1)).toEqual(['KSampler']);
    expect(top('Load Checkpoint', 1)).toEqual(['CheckpointLoaderSimple']);
    expect(top('CheckpointLoaderSimple', 1)).toEqual(['CheckpointLoaderSimple']);
    expect(top('resize', 3)).toContain('ImageScale');
    expect(top('prompt', 3)).toContain('CLIPTextEncode');
  });

  it('tolerates a typo per word and any word order', () => {
    expect(top('samplr', 2)).toContain('KSampler');
    expect(top('scale image', 2)).toContain('ImageScale');
    expect(top('decode vae', 1)).toEqual(['VAEDecode']);
  });

  it('finds nothing for nonsense', () => {
    expect(searchNodes(entries, 'qqqzzzxxy')).toEqual([]);
  });
});
