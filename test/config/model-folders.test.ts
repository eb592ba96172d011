import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, ModelFolders, ModelPathError } from '../../runtime/config/model-folders.js';

function touch(path: string, text = 'x'): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
}

describe('model folders', () => {
  const data = mkdtempSync(join(tmpdir(), 'resflow-folders-'));
  const comfy = mkdtempSync(join(tmpdir(), 'resflow-comfy-'));
  touch(join(data, 'models/checkpoints/b.safetensors'));
  touch(join(data, 'models/checkpoints/sub/a.safetensors'));
  touch(join(data, 'models/checkpoints/notes.txt'));
  touch(join(data, 'models/resadapters/ra_v2/pytorch_lora_weights.safetensors'));
  touch(join(data, 'models/resadapters/family/ra_v1/resolution_lora.safetensors'));
  touch(join(data, 'models/tokenizers/clip-vit-large-patch14/vocab.json'));
  touch(join(comfy, 'checkpoints/c.safetensors'));
  touch(join(comfy, 'loras/style.safetensors'));
  writeFileSync(join(data, 'resflow.config.json'), JSON.stringify({ modelRoots: [comfy], tokenizerDirs: ['tok'] }));

  it('lists models of every root, folder-shaped kinds by folder, sorted and relative', () => {
    const f = new ModelFolders(data);
    expect(f.list('checkpoints')).toEqual(['b.safetensors', 'c.safetensors', 'sub/a.safetensors']);
    expect(f.list('resadapters')).toEqual(['family/ra_v1', 'ra_v2']);
    expect(f.list('tokenizers')).toEqual(['clip-vit-large-patch14']);
    expect(f.list('loras')).toEqual(['style.safetensors']);
    expect(f.list('controlnet')).toEqual([]);
    expect(f.tokenizerDirs).toEqual([join(data, 'tok')]);
  });

  it('resolves names, the data dir first, and refuses traversal and absolute paths', () => {
    const f = new ModelFolders(data);
    expect(f.resolve('checkpoints', 'c.safetensors')).toBe(join(comfy, 'checkpoints/c.safetensors'));
    expect(f.resolve('checkpoints', 'sub/a.safetensors')).toBe(join(data, 'models/checkpoints/sub/a.safetensors'));
    for (const bad of ['../resflow.config.json', '/etc/passwd', 'sub/../../x', '']) expect(() => f.resolve('checkpoints', bad)).toThrow(ModelPathError);
    expect(() => f.resolve('checkpoints', 'missing.safetensors')).toThrow(/checkpoints "missing.safetensors" not found \(looked in/);
  });

  it('a malformed config names the file and the field', () => {
    const d = mkdtempSync(join(tmpdir(), 'resflow-badcfg-'));
    writeFileSync(join(d, 'resflow.config.json'), '{"modelRoots": "not-a-list"}');
    expect(() => loadConfig(d)).toThrow(/resflow\.config\.json: modelRoots: /);
    writeFileSync(join(d, 'resflow.config.json'), '{oops');
    expect(() => loadConfig(d)).toThrow(/not valid JSON/);
    writeFileSync(join(d, 'resflow.config.json'), '{"unknownKey": 1}');
    expect(() => loadConfig(d)).toThrow(/resflow\.config\.json/);
  });
});
