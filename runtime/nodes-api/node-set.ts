import type { RuntimeEnv } from './env.js';
import type { NodeRegistry } from './registry.js';

/**
 * The runtime runs whatever node set the program's entry point installs: runtime/ must not import nodes/
 * (layering is one-way), so the CLI and the server ask this slot for their registry instead.
 */
export type NodeSetFactory = (env: RuntimeEnv) => NodeRegistry;

let installed: NodeSetFactory | null = null;

export function installNodeSet(factory: NodeSetFactory): void {
  installed = factory;
}

export function createNodeRegistry(env: RuntimeEnv): NodeRegistry {
  if (!installed) {
    throw new Error('no node set installed: the entry point must import nodes/core/install.js before running workflows');
  }
  return installed(env);
}
