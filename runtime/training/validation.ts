/**
 * The fixed-batch loss curve of a training run, kept beside its checkpoint so a resumed run continues
 * the same curve. Written atomically: a run stopped mid-write keeps the previous curve.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { z } from 'zod';

export const VALIDATION_FILE = 'validation.json';

const ValidationFile = z.object({ points: z.array(z.tuple([z.number().int().nonnegative(), z.number()])) });

export function loadValidation(path: string): Array<[number, number]> {
  if (!existsSync(path)) return [];
  const parsed = ValidationFile.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success) throw new Error(`${path}: not a validation curve (${parsed.error.issues[0]?.message ?? 'bad format'})`);
  return parsed.data.points;
}

export function saveValidation(path: string, points: ReadonlyArray<[number, number]>): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify({ points }));
  renameSync(tmp, path);
}
