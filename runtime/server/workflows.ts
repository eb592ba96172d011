import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { NodeRegistry } from '../nodes-api/registry.js';
import { importWorkflow } from '../workflow/import.js';
import type { EditorWorkflow } from '../workflow/editor-schema.js';
import { HttpError } from './http.js';

/** Tried in order for the editor's first open; the ResAdapter txt2img graph is the intended default. */
// The editor opens on ResFlow Shapes: a model that draws something recognisable (the SD1.5 examples name the
// random demo model, whose pictures are noise).
export const DEFAULT_WORKFLOW_FILES = ['shapes-resadapter-256.json', 'resadapter-txt2img-512.json', 'default.json'];

const NAME = /^[\w][\w.-]{0,120}\.json$/;

/**
 * The bundled workflows folder, served to the editor in its own (litegraph) format whichever format a
 * file is in. Names are plain file names: nothing outside the folder can be addressed.
 */
export class WorkflowLibrary {
  constructor(
    private readonly dir: string,
    private readonly registry: NodeRegistry,
    private readonly defaults: readonly string[] = DEFAULT_WORKFLOW_FILES,
  ) {}

  async list(): Promise<string[]> {
    try {
      return (await readdir(this.dir)).filter((f) => NAME.test(f)).sort();
    } catch {
      return [];
    }
  }

  async load(name: string): Promise<EditorWorkflow> {
    if (!NAME.test(name)) throw new HttpError(400, 'invalid_path', 'Workflow names are plain .json file names', name);
    let text: string;
    try {
      text = await readFile(join(this.dir, name), 'utf8');
    } catch {
      throw new HttpError(404, 'not_found', `No workflow named "${name}"`);
    }
    const imported = importWorkflow(text, this.registry);
    if (!imported.success) throw new HttpError(500, 'invalid_workflow', `The bundled workflow "${name}" is invalid`, imported.error.message);
    return imported.data.workflow;
  }

  async defaultWorkflow(): Promise<EditorWorkflow> {
    const available = await this.list();
    const name = this.defaults.find((d) => available.includes(d)) ?? available[0];
    if (!name) throw new HttpError(404, 'no_default_workflow', `No workflow files in ${this.dir}`);
    return this.load(name);
  }
}
