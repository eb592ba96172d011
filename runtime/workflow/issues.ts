import type { z } from 'zod';

/** One problem in an imported document, located by a JSONPath such as `$.nodes[2].pos[0]` or `$["7"].inputs.seed`. */
export interface WorkflowIssue {
  path: string;
  message: string;
}

export function jsonPath(path: readonly PropertyKey[]): string {
  let out = '$';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z_$][\w$]*$/.test(key)) out += `.${key}`;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out;
}

export function issuesFromZod(error: z.ZodError): WorkflowIssue[] {
  return error.issues.map((issue) => ({ path: jsonPath(issue.path), message: issue.message }));
}

export class WorkflowParseError extends Error {
  constructor(
    /** What was being read, e.g. "API prompt" or "editor workflow". */
    readonly what: string,
    readonly issues: readonly WorkflowIssue[],
  ) {
    super(`invalid ${what}:\n${issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`);
    this.name = 'WorkflowParseError';
  }
}

export type ParseResult<T> = { success: true; data: T; error?: undefined } | { success: false; error: WorkflowParseError; data?: undefined };

/** Accepts a JSON string or an already-parsed value, so callers at the HTTP and file boundaries share one path. */
export function parseWith<S extends z.ZodType>(schema: S, what: string, input: unknown): ParseResult<z.output<S>> {
  let value = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (e) {
      return { success: false, error: new WorkflowParseError(what, [{ path: '$', message: `not valid JSON: ${(e as Error).message}` }]) };
    }
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) return { success: false, error: new WorkflowParseError(what, issuesFromZod(parsed.error)) };
  return { success: true, data: parsed.data };
}
