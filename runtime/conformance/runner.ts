import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConformanceCase, type TensorResult } from './case.js';
import { CaseModels } from './models.js';
import type { CaseKind } from './kinds/types.js';
import { CASE_KINDS } from './kinds/index.js';

export interface CaseReport {
  case: string;
  kind: string | null;
  seconds: number;
  results: TensorResult[];
  error?: string;
  pass: boolean;
}

export interface ConformanceReport {
  folder: string;
  cases: CaseReport[];
  pass: boolean;
}

/** Case folders in index.json order when there is one, else every subfolder holding a case.json. */
export function listCases(folder: string): string[] {
  const index = join(folder, 'index.json');
  if (existsSync(index)) {
    const cases = JSON.parse(readFileSync(index, 'utf8')).cases;
    if (Array.isArray(cases)) return cases.map(String);
  }
  return readdirSync(folder, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(folder, d.name, 'case.json')))
    .map((d) => d.name)
    .sort();
}

export function kindFor(c: ConformanceCase, kinds: CaseKind[] = CASE_KINDS): CaseKind | null {
  return kinds.find((k) => k.matches(c)) ?? null;
}

export async function runConformance(
  folder: string,
  opts: { only?: string[]; onCase?: (r: CaseReport) => void; models?: CaseModels } = {},
): Promise<ConformanceReport> {
  const models = opts.models ?? new CaseModels();
  const names = listCases(folder).filter((n) => !opts.only || opts.only.includes(n));
  const reports: CaseReport[] = [];
  for (const name of names) {
    const t0 = performance.now();
    let report: CaseReport;
    try {
      const c = new ConformanceCase(join(folder, name));
      const kind = kindFor(c);
      if (!kind) {
        report = { case: name, kind: null, seconds: 0, results: [], error: 'no implementation for this case kind', pass: false };
      } else {
        let error: string | undefined;
        try {
          await kind.run(c, models);
        } catch (e) {
          error = e instanceof Error ? e.message : String(e);
        }
        const missing = c.unchecked();
        if (missing.length && !error) error = `expected tensors not produced: ${missing.join(', ')}`;
        const results = c.results;
        report = { case: name, kind: kind.name, seconds: 0, results, pass: !error && results.length > 0 && results.every((r) => r.pass) };
        if (error) report.error = error;
      }
    } catch (e) {
      report = { case: name, kind: null, seconds: 0, results: [], error: e instanceof Error ? e.message : String(e), pass: false };
    }
    report.seconds = (performance.now() - t0) / 1000;
    reports.push(report);
    opts.onCase?.(report);
  }
  return { folder, cases: reports, pass: reports.length > 0 && reports.every((r) => r.pass) };
}

const fmt = (x: number) => (Number.isFinite(x) ? x.toExponential(2) : String(x));

/** A plain-text table: one line per tensor, a line per case, and a closing summary. */
export function formatCaseReport(r: CaseReport, verbose = true): string {
  const lines: string[] = [];
  lines.push(`${r.pass ? 'PASS' : 'FAIL'}  ${r.case.padEnd(22)} ${(r.kind ?? '-').padEnd(16)} ${r.results.length} tensors  ${r.seconds.toFixed(1)}s`);
  if (r.error) lines.push(`      error: ${r.error}`);
  for (const t of r.results) {
    if (!verbose && t.pass) continue;
    lines.push(`      ${t.pass ? 'ok  ' : 'FAIL'} ${t.tensor.padEnd(44)} max err ${fmt(t.maxError).padStart(9)}  tol ${fmt(t.limit).padStart(9)}${t.note ? `  (${t.note})` : ''}`);
  }
  return lines.join('\n');
}

export function summaryLine(rep: ConformanceReport): string {
  const passed = rep.cases.filter((c) => c.pass).length;
  const tensors = rep.cases.reduce((s, c) => s + c.results.length, 0);
  return `conformance: ${passed}/${rep.cases.length} cases passed, ${tensors} tensors compared (${rep.folder})`;
}
