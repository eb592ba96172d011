/**
 * ComfyUI's CONDITIONING is a list of (context, options) entries. Ours is the first entry with the rest in
 * `combined`; these helpers convert between the two views so nodes can work entry by entry.
 */
import { SamplingValidationError, type Conditioning } from './types.js';

/** The entries of a conditioning list, in order (each without `combined`). */
export function condEntries(c: Conditioning): Conditioning[] {
  const { combined, ...head } = c;
  return [head, ...(combined ?? []).flatMap(condEntries)];
}

/** A conditioning value holding these entries. */
export function condFromEntries<T extends Conditioning>(entries: T[]): T {
  if (!entries.length) throw new SamplingValidationError('a conditioning needs at least one entry');
  const [first, ...rest] = entries;
  const { combined: _drop, ...head } = first!;
  return (rest.length ? { ...head, combined: rest } : head) as T;
}

/** Applies `f` to every entry (ComfyUI's node_helpers.conditioning_set_values pattern). */
export function mapEntries<T extends Conditioning>(c: T, f: (entry: T) => T): T {
  return condFromEntries((condEntries(c) as T[]).map(f));
}

/** Python's round() on a double: halves go to the even neighbour (JS Math.round rounds them up). */
export function pyRound(v: number): number {
  const r = Math.round(v);
  if (Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0) return r - 1;
  return r;
}
