import { parseArgs } from 'node:util';
import { cacheBudgetBytes, clearCache, enforceCacheBudget, listCacheEntries } from '../graph/disk-cache.js';
import { defaultCacheDir } from '../graph/session.js';

export const CACHE_HELP = `resflow cache [--clear] [--trim] [--json]

Shows the compiled-model cache (ONNX graphs with their F32 weight files, one per model variant) in
$RESFLOW_CACHE_DIR or ~/.cache/resflow: each entry's size and last use, the total and the budget.
The budget is $RESFLOW_CACHE_BUDGET_GB, else three times the largest entry (at least 4 GiB); the
least recently used entries beyond it are removed whenever a model is compiled.

  --clear   remove every entry (they are rebuilt from the model files when next needed)
  --trim    remove least recently used entries until the cache fits its budget`;

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

export async function cacheCommand(argv: string[], out: (s: string) => void = console.log): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { clear: { type: 'boolean' }, trim: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help || positionals.length) {
    out(CACHE_HELP);
    return values.help ? 0 : 2;
  }
  const dir = defaultCacheDir();
  if (values.clear || values.trim) {
    const r = values.clear ? clearCache(dir) : enforceCacheBudget(dir);
    const freed = r.removed.reduce((n, e) => n + e.bytes, 0);
    if (values.json) out(JSON.stringify({ dir, removed: r.removed.map((e) => e.hash), freedBytes: freed, bytes: r.bytes, budgetBytes: r.budgetBytes }));
    else out(`removed ${r.removed.length} entr${r.removed.length === 1 ? 'y' : 'ies'} (${gib(freed)}) from ${dir}; ${gib(r.bytes)} left`);
    return 0;
  }
  const entries = listCacheEntries(dir);
  const total = entries.reduce((n, e) => n + e.bytes, 0);
  const budget = cacheBudgetBytes(entries);
  if (values.json) {
    out(JSON.stringify({ dir, entries, bytes: total, budgetBytes: budget }));
    return 0;
  }
  out(`compiled-model cache: ${dir}`);
  for (const e of entries) out(`  ${e.hash}  ${gib(e.bytes).padStart(10)}  last used ${new Date(e.lastUsed).toISOString()}`);
  out(`${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}, ${gib(total)} of a ${gib(budget)} budget`);
  return 0;
}
