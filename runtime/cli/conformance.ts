import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { formatCaseReport, runConformance, summaryLine } from '../conformance/runner.js';

export const CONFORMANCE_HELP = `resflow conformance <folder> [--case NAME]... [--quiet] [--json]

Runs every case of a conformance folder (case.json + inputs/expected safetensors per case, as in
../shared/conformance) through ResFlow's own models and prints, per case and tensor, the max error
against the tolerance. Exits 1 if any case fails.`;

export async function conformanceCommand(argv: string[], out: (s: string) => void = console.log): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { case: { type: 'string', multiple: true }, quiet: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help || positionals.length !== 1) {
    out(CONFORMANCE_HELP);
    return values.help ? 0 : 2;
  }
  const folder = resolve(positionals[0]!);
  const opts: Parameters<typeof runConformance>[1] = {};
  if (values.case) opts.only = values.case;
  if (!values.json) opts.onCase = (r) => out(formatCaseReport(r, !values.quiet));
  const rep = await runConformance(folder, opts);
  if (values.json) out(JSON.stringify(rep, null, 1));
  else out(summaryLine(rep));
  return rep.pass ? 0 : 1;
}
