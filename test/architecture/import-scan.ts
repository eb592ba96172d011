import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

/** Every module specifier in a TypeScript source: static imports/exports, side-effect imports, import(). */
export function importSpecifiers(source: string): string[] {
  const out: string[] = [];
  const patterns = [
    /\b(?:import|export)\s[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"`]([^'"`]+)['"`]\s*\)/g,
  ];
  for (const re of patterns) for (const m of source.matchAll(re)) out.push(m[1]!);
  return out;
}

export function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (/\.(ts|mts|js|mjs)$/.test(name) && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

export interface LayerRule {
  /** Folder (relative to the repo root, '/'-separated) whose files the rule constrains. */
  from: string;
  /** Folders those files must not import from. */
  forbidden: string[];
}

export interface Violation {
  file: string;
  specifier: string;
  target: string;
  rule: string;
}

const inside = (path: string, folder: string): boolean => path === folder || path.startsWith(folder + '/');

/** Relative imports of `file` (repo-relative) that land in a folder its rules forbid. */
export function violationsOf(root: string, file: string, source: string, rules: LayerRule[]): Violation[] {
  const out: Violation[] = [];
  for (const spec of importSpecifiers(source)) {
    if (!spec.startsWith('.')) continue;
    const target = relative(root, resolve(root, dirname(file), spec)).split(sep).join('/');
    for (const rule of rules) {
      if (!inside(file, rule.from)) continue;
      for (const f of rule.forbidden) {
        if (inside(target, f)) out.push({ file, specifier: spec, target, rule: `${rule.from} must not import ${f}` });
      }
    }
  }
  return out;
}

export function scanLayering(root: string, rules: LayerRule[]): Violation[] {
  const out: Violation[] = [];
  const roots = new Set(rules.map((r) => r.from));
  for (const folder of roots) {
    for (const abs of tsFiles(join(root, folder))) {
      const file = relative(root, abs).split(sep).join('/');
      out.push(...violationsOf(root, file, readFileSync(abs, 'utf8'), rules));
    }
  }
  return out;
}
