// Regenerates workflows/*.json (editor format) from runtime/workflow/examples.ts: `npx tsx scripts/make-workflows.ts`.
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createRuntimeEnv } from '../nodes/env.js';
import { createCoreRegistry } from '../nodes/core/index.js';
import { apiToEditor } from '../runtime/workflow/api-to-editor.js';
import { exampleWorkflows } from '../runtime/workflow/examples.js';
import { parseApiPrompt } from '../runtime/workflow/api-schema.js';

const registry = createCoreRegistry(createRuntimeEnv({ dataDir: join(process.cwd(), '.cache', 'make-workflows') }));
mkdirSync('workflows', { recursive: true });
for (const [file, prompt] of Object.entries(exampleWorkflows())) {
  const parsed = parseApiPrompt(prompt);
  if (!parsed.success) throw parsed.error;
  const wf = apiToEditor(parsed.data, registry);
  writeFileSync(join('workflows', file), JSON.stringify(wf, null, 1) + '\n');
  console.log('wrote', file, Object.keys(prompt).length, 'nodes');
}
