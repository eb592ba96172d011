/** Damerau-free Levenshtein distance, case-insensitive: enough to catch typos like `stepz` for `steps`. */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  let prev = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    const cur = [i];
    for (let j = 1; j <= t.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (s[i - 1] === t[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[t.length]!;
}

/**
 * Candidates close to `wanted`, best first: substring matches in either direction, then those within an
 * edit distance of about a third of the word (at least 2), so a short typo never suggests everything.
 */
export function suggest(wanted: string, candidates: readonly string[], limit = 5): string[] {
  const w = wanted.toLowerCase();
  const scored: Array<[number, string]> = [];
  for (const c of candidates) {
    const l = c.toLowerCase();
    const d = editDistance(w, l);
    if (l.includes(w) || w.includes(l)) scored.push([Math.min(d, 1) - 1 + Math.abs(l.length - w.length) / 100, c]);
    else if (d <= Math.max(2, Math.floor(w.length / 3))) scored.push([d, c]);
  }
  return scored.sort((x, y) => x[0] - y[0] || x[1].localeCompare(y[1])).slice(0, limit).map(([, c]) => c);
}

/** ` (did you mean "a" or "b"?)`, or nothing. */
export function didYouMean(wanted: string, candidates: readonly string[]): string {
  const s = suggest(wanted, candidates, 3);
  if (s.length === 0) return '';
  return ` (did you mean ${s.map((x) => `"${x}"`).join(' or ')}?)`;
}
