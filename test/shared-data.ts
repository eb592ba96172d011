/**
 * The one place tests find the shared data (conformance vectors, released adapters, the CLIP tokenizer).
 *
 * It lives in `../shared` beside the checkout, or wherever RESFLOW_SHARED points. RESFLOW_CONFORMANCE may point
 * the `conformance` folder alone elsewhere (hidden sets of the same kind). Missing data is a failure naming the
 * path it looked at, never a quiet skip: a checkout without the data must not look green.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The shared data folder: $RESFLOW_SHARED, else `../shared` beside the checkout. */
export function sharedRoot(): string {
  const env = process.env.RESFLOW_SHARED;
  return env && env.trim() ? path.resolve(env) : path.resolve(repoRoot, '../shared');
}

function locate(parts: string[]): string {
  const joined = path.join(...parts);
  const override = process.env.RESFLOW_CONFORMANCE;
  if (override && override.trim() && (joined === 'conformance' || joined.startsWith(`conformance${path.sep}`))) {
    return path.resolve(override, path.relative('conformance', joined));
  }
  return path.resolve(sharedRoot(), joined);
}

export class MissingSharedData extends Error {
  constructor(readonly missing: string) {
    super(
      `Shared test data is missing: ${missing} does not exist. Put the shared data folder at ${path.resolve(repoRoot, '../shared')} ` +
        '(beside the checkout) or point RESFLOW_SHARED at it.',
    );
    this.name = 'MissingSharedData';
  }
}

/** Path of a file or folder in the shared data; throws MissingSharedData (naming the path) if it is absent. */
export function shared(...parts: string[]): string {
  const p = locate(parts);
  if (!existsSync(p)) throw new MissingSharedData(p);
  return p;
}

/** Like shared() but without the existence check, for paths a test creates or expects to be absent. */
export function sharedPathUnchecked(...parts: string[]): string {
  return locate(parts);
}
