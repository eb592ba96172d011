import type { ConformanceCase } from '../case.js';
import type { CaseModels } from '../models.js';

/** A kind of conformance case: recognises its case folders and checks every expected tensor it can produce. */
export interface CaseKind {
  name: string;
  matches(c: ConformanceCase): boolean;
  run(c: ConformanceCase, models: CaseModels): Promise<void>;
}
