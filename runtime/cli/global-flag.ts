import type { z } from 'zod';
import { CliUsageError } from './workflow-io.js';

/**
 * Takes `--name value` / `--name=value` off the arguments (a flag every command accepts, read before the command
 * parses the rest), checked against `schema`; the last occurrence wins.
 */
export function takeGlobalFlag<S extends z.ZodType>(argv: readonly string[], name: string, schema: S, allowed: readonly string[]): { argv: string[]; value?: z.infer<S> } {
  const rest: string[] = [];
  let value: z.infer<S> | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    let raw: string | undefined;
    if (a === `--${name}`) raw = argv[++i];
    else if (a.startsWith(`--${name}=`)) raw = a.slice(name.length + 3);
    else {
      rest.push(a);
      continue;
    }
    const parsed = schema.safeParse(raw);
    if (!parsed.success) throw new CliUsageError(`--${name} must be one of ${allowed.join(', ')}; got "${raw ?? ''}"`);
    value = parsed.data;
  }
  return value === undefined ? { argv: rest } : { argv: rest, value };
}
