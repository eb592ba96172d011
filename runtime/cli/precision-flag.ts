import { loadConfig } from '../config/model-folders.js';
import { PRECISIONS, precisionSchema, setDefaultPrecision, type Precision } from '../graph/precision.js';
import { takeGlobalFlag } from './global-flag.js';

/**
 * `--precision fp32|int8` works on every command like `--device`: taken off the arguments before the command
 * parses them. The config file's `precision` applies first; the flag wins; RESFLOW_PRECISION is the fallback.
 */
export function takePrecisionFlag(argv: readonly string[]): { argv: string[]; precision?: Precision } {
  const r = takeGlobalFlag(argv, 'precision', precisionSchema, PRECISIONS);
  return r.value === undefined ? { argv: r.argv } : { argv: r.argv, precision: r.value };
}

export function applyPrecisionSettings(dataDir: string, flag: Precision | undefined): void {
  const config = loadConfig(dataDir);
  if (config.precision) setDefaultPrecision(config.precision);
  if (flag) setDefaultPrecision(flag);
}
