import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCoreRegistry } from '../../nodes/core/index.js';
import { createRuntimeEnv } from '../../nodes/env.js';
import { startServer, type RunningServer } from '../../runtime/server/index.js';

describe("ComfyUI's /userdata routes", () => {
  let server: RunningServer;
  let dir: string;
  const u = (path: string) => `${server.url}/api/userdata${path}`;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'resflow-userdata-'));
    const env = createRuntimeEnv({ dataDir: dir });
    server = await startServer({ env, registry: createCoreRegistry(env), port: 0, log: () => {} });
  });
  afterAll(() => server?.close());

  it('saves, lists, reads, renames and deletes workflows under <data>/user/default', async () => {
    const wf = JSON.stringify({ nodes: [], links: [], version: 0.4 });
    const save = await fetch(u('/workflows%2Fmine.json'), { method: 'POST', body: wf });
    expect(save.status).toBe(200);
    expect(await save.json()).toBe('workflows/mine.json');
    expect(readFileSync(join(dir, 'user', 'default', 'workflows', 'mine.json'), 'utf8')).toBe(wf);
    expect(await (await fetch(u('?dir=workflows'))).json()).toEqual(['mine.json']);
    const full = (await (await fetch(u('?dir=workflows&full_info=true'))).json()) as { path: string; size: number }[];
    expect(full).toEqual([expect.objectContaining({ path: 'mine.json', size: wf.length })]);
    expect(await (await fetch(u('/workflows%2Fmine.json'))).text()).toBe(wf);
    const refused = await fetch(u('/workflows%2Fmine.json?overwrite=false'), { method: 'POST', body: '{}' });
    expect(refused.status).toBe(409);
    const moved = await fetch(u('/workflows%2Fmine.json/move/workflows%2Frenamed.json'), { method: 'POST' });
    expect(moved.status).toBe(200);
    expect(await (await fetch(u('?dir=workflows'))).json()).toEqual(['renamed.json']);
    expect((await fetch(u('/workflows%2Frenamed.json'), { method: 'DELETE' })).status).toBe(204);
    expect(await (await fetch(u('?dir=workflows'))).json()).toEqual([]);
    expect((await fetch(u('/workflows%2Frenamed.json'))).status).toBe(404);
  });

  it('never leaves the user folder', async () => {
    for (const bad of ['..%2F..%2Fescape.json', '%2Fetc%2Fpasswd', 'workflows%2F..%2F..%2Fx.json']) {
      const r = await fetch(u(`/${bad}`), { method: 'POST', body: '{}' });
      expect(r.status, bad).toBe(400);
    }
    expect(existsSync(join(dir, 'escape.json'))).toBe(false);
    expect((await fetch(u('?dir=..'))).status).toBe(400);
  });

  it('refuses writes from another origin', async () => {
    const r = await fetch(u('/workflows%2Fx.json'), { method: 'POST', body: '{}', headers: { origin: 'http://evil.example' } });
    expect(r.status).toBe(403);
  });
});
