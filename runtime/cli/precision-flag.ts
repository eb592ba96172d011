import { loadConfig } from '../config/model-folders.js';
import { PRECISIONS, precisionSchema, setDefaultPrecision, type Precision } from '../graph/precision.js';
import { CliUsageError } from './workflow-io.js';

/**
 * `--precision fp32|int8` works on every command like `--device`: taken off the arguments before the command
 * parses them. The config file's `precision` applies first; the flag wins; RESFLOW_PRECISION is the fallback.
 */
export function takePrecisionFlag(argv: readonly string[]): { argv: string[]; precision?: Precision } {
  const rest: string[] = [];
  let precision: Precision | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    let value: string | undefined;
    if (a === '--precision') value = argv[++i];
    else if (a.startsWith('--precision=')) value = a.slice('--precision='.length);
    else {
      rest.push(a);
      continue;
    }
    const parsed = precisionSchema.safeParse(value);
    if (!parsed.success) throw new CliUsageError(`--precision must be one of ${PRECISIONS.join(', ')}; got "${value ?? ''}"`);
    precision = parsed.data;
  }
  return precision === undefined ? { argv: rest } : { argv: rest, precision };
}

export function applyPrecisionSettings(dataDir: string, flag: Precision | undefined): void {
  const config = loadConfig(dataDir);
  if (config.precision) setDefaultPrecision(config.precision);
  if (flag) setDefaultPrecision(flag);
}
