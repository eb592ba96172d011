/**
 * How tests find the shared data, and the rules that keep them honest: a missing folder fails with its path,
 * no test skips on data it cannot find, and no test names a path that exists only on one machine.
 */
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MissingSharedData, repoRoot, shared, sharedRoot } from './shared-data.js';

const saved = { shared: process.env.RESFLOW_SHARED, conformance: process.env.RESFLOW_CONFORMANCE };
afterEach(() => {
  for (const [k, v] of [['RESFLOW_SHARED', saved.shared], ['RESFLOW_CONFORMANCE', saved.conformance]] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

function testSources(dir = path.join(repoRoot, 'test')): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return statSync(p).isDirectory() ? testSources(p) : /\.(ts|mts|js|mjs)$/.test(name) ? [p] : [];
  });
}

describe('locating the shared data', () => {
  it('is ../shared beside the checkout unless RESFLOW_SHARED says otherwise', () => {
    delete process.env.RESFLOW_SHARED;
    expect(sharedRoot()).toBe(path.resolve(repoRoot, '..', 'shared'));
    const other = mkdtempSync(path.join(tmpdir(), 'resflow-shared-'));
    process.env.RESFLOW_SHARED = other;
    expect(sharedRoot()).toBe(other);
    expect(shared()).toBe(other);
  });

  it('fails naming the missing path instead of skipping', () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'resflow-noshared-'));
    process.env.RESFLOW_SHARED = empty;
    delete process.env.RESFLOW_CONFORMANCE;
    const want = path.join(empty, 'conformance', 'index.json');
    expect(() => shared('conformance', 'index.json')).toThrow(MissingSharedData);
    expect(() => shared('conformance', 'index.json')).toThrow(want);
    expect(() => shared('conformance', 'index.json')).toThrow(/RESFLOW_SHARED/);
  });

  it('lets RESFLOW_CONFORMANCE move only the conformance folder', () => {
    const conf = mkdtempSync(path.join(tmpdir(), 'resflow-conf-'));
    process.env.RESFLOW_CONFORMANCE = conf;
    expect(shared('conformance')).toBe(conf);
    expect(() => shared('conformance', 'vae')).toThrow(path.join(conf, 'vae'));
    expect(() => shared('resadapter')).not.toThrow(path.join(conf, 'resadapter'));
  });

  it('the shared data this run depends on is present', () => {
    for (const p of [['conformance', 'index.json'], ['conformance-sdxl', 'index.json'], ['resadapter'], ['clip-tokenizer', 'vocab.json']]) {
      expect(statSync(shared(...p)).size).toBeGreaterThan(0);
    }
  });
});

describe('test sources', () => {
  const files = testSources();
  const rel = (f: string) => path.relative(repoRoot, f);

  it('name no absolute path of one machine', () => {
    // Folders that only this machine has: where the checkout sits, the user's home, the lab's /work.
    // The system temp folder is on every machine: a checkout cloned into it does not make `/tmp` a machine path.
    const roots = [path.dirname(repoRoot), homedir(), ['', 'work'].join('/')].filter((r) => r !== '/' && r !== path.parse(r).root && r !== tmpdir() && r !== '/tmp');
    const escape = (r: string) => r.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const machinePath = new RegExp(`['"\`](?:${roots.map(escape).join('|')})[/'"\`]`);
    const offenders = files.flatMap((f) =>
      readFileSync(f, 'utf8')
        .split('\n')
        .map((line, i) => [line, i] as const)
        .filter(([line]) => machinePath.test(line))
        .map(([line, i]) => `${rel(f)}:${i + 1}: ${line.trim()}`),
    );
    expect(offenders).toEqual([]);
  });

  it('find the shared data only through test/shared-data.ts and never skip on it', () => {
    const self = new Set([path.join(repoRoot, 'test', 'shared-data.ts'), path.join(repoRoot, 'test', 'shared-data.test.ts')]);
    const offenders = files
      .filter((f) => !self.has(f))
      .flatMap((f) => {
        const src = readFileSync(f, 'utf8');
        const bad: string[] = [];
        if (/\.\.\/shared['"`/]|RESFLOW_CONFORMANCE|RESFLOW_SHARED/.test(src)) bad.push(`${rel(f)}: locates shared data itself`);
        if (/\.(skipIf|runIf)\(|\b(it|describe|test)\.skip\(/.test(src)) bad.push(`${rel(f)}: conditional or unconditional skip`);
        return bad;
      });
    expect(offenders).toEqual([]);
  });
});
