import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ModelFolders } from '../config/model-folders.js';

/**
 * What nodes may touch outside their inputs: model folders and the input/output/temp folders. One env per
 * runtime (CLI run, server); node definitions close over it.
 */
export interface RuntimeEnv {
  readonly dataDir: string;
  readonly folders: ModelFolders;
  readonly inputDir: string;
  readonly outputDir: string;
  readonly tempDir: string;
}

export interface RuntimeEnvOptions {
  dataDir?: string;
  outputDir?: string;
  inputDir?: string;
  tempDir?: string;
  /** Extra models roots beside `<dataDir>/models` (CLI --models). */
  modelRoots?: string[];
}

export function createRuntimeEnv(opts: RuntimeEnvOptions = {}): RuntimeEnv {
  const dataDir = resolve(opts.dataDir ?? process.env.RESFLOW_DATA_DIR ?? process.cwd());
  const env: RuntimeEnv = {
    dataDir,
    folders: new ModelFolders(dataDir, undefined, opts.modelRoots ?? []),
    inputDir: resolve(opts.inputDir ?? join(dataDir, 'input')),
    outputDir: resolve(opts.outputDir ?? join(dataDir, 'output')),
    tempDir: resolve(opts.tempDir ?? join(dataDir, 'temp')),
  };
  for (const d of [env.inputDir, env.outputDir, env.tempDir]) mkdirSync(d, { recursive: true });
  return env;
}
