import { describe, expect, it } from 'vitest';
import { resolve } from 'node:path';
import { importSpecifiers, scanLayering, violationsOf, type LayerRule } from './import-scan.js';

const ROOT = resolve(import.meta.dirname, '..', '..');

/** The one-way layering the README's architecture section states. */
const RULES: LayerRule[] = [
  { from: 'runtime', forbidden: ['nodes', 'renderer', 'electron'] },
  { from: 'runtime/models', forbidden: ['runtime/pipeline'] },
];

describe('layering', () => {
  it('runtime/ never imports nodes/, renderer/ or electron/, and runtime/models never imports runtime/pipeline', () => {
    const violations = scanLayering(ROOT, RULES);
    expect(violations.map((v) => `${v.file}: '${v.specifier}' (${v.rule})`)).toEqual([]);
  });

  it('sees every import form, so an upward import cannot slip through', () => {
    const src = [
      "import { a } from '../../nodes/core/index.js';",
      "import type {\n  B,\n  C,\n} from '../../renderer/app.js';",
      "export * from '../../electron/main.js';",
      "import '../../nodes/core/install.js';",
      "const m = await import('../../pipeline/eps-model.js');",
      "import { ok } from './fine.js';",
      "import { z } from 'zod';",
    ].join('\n');
    expect(importSpecifiers(src)).toHaveLength(7);
    const runtimeHits = violationsOf(ROOT, 'runtime/executor/x.ts', src, RULES).map((v) => v.target);
    expect(runtimeHits).toEqual(['nodes/core/index.js', 'renderer/app.js', 'electron/main.js', 'nodes/core/install.js']);
    const modelHits = violationsOf(ROOT, 'runtime/models/sdxl/x.ts', src, RULES).map((v) => v.target);
    expect(modelHits).toContain('runtime/pipeline/eps-model.js');
  });

  it('the node contract lives in runtime/ and the old nodes/ paths only re-export it', async () => {
    const shim = await import('../../nodes/registry.js');
    const real = await import('../../runtime/nodes-api/registry.js');
    expect(shim.NodeRegistry).toBe(real.NodeRegistry);
  });
});
