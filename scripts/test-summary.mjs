// Prints the closing "N passed, N failed" line from vitest's JSON report (written by vitest.config.ts).
import { existsSync, readFileSync } from 'node:fs';

const [file, status] = process.argv.slice(2);
if (!existsSync(file)) {
  // Type-check failures stop `npm test` before vitest runs: count that as one failure.
  console.log(`0 passed, ${status === '0' ? 0 : 1} failed`);
  process.exit(0);
}
const r = JSON.parse(readFileSync(file, 'utf8'));
const failed = r.numFailedTests + (r.numFailedTestSuites ?? 0) - (r.testResults ?? []).filter((t) => t.status === 'failed' && t.assertionResults?.some((a) => a.status === 'failed')).length;
console.log(`${r.numPassedTests} passed, ${Math.max(failed, r.numFailedTests)} failed${r.numPendingTests ? `, ${r.numPendingTests} skipped` : ''}`);
