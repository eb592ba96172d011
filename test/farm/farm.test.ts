import { copyFileSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Executor } from '../../runtime/executor/executor.js';
import { validatePrompt } from '../../runtime/executor/validate.js';
import { DEMO_CHECKPOINT } from '../../runtime/models/synthetic/demo.js';
import { history, post, startFront, startRedis, startWorker, txt2img, waitFor, type Front, type WorkerProcess } from './helpers.js';

/**
 * The farm for real: a redis-server on loopback, the front server (this process) and `resflow worker` child
 * processes. Every test uses its own farm prefix so leftovers of one never reach another.
 */

let redis: Awaited<ReturnType<typeof startRedis>>;
const workers: WorkerProcess[] = [];
const fronts: Front[] = [];
let n = 0;
const prefix = () => `farmtest${process.pid}x${n++}`;

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await Promise.all(workers.map((w) => w.kill('SIGKILL')));
  for (const f of fronts) await f.server.close().catch(() => {});
  redis?.stop();
});

async function worker(p: string, name: string, extra: string[] = []) {
  const w = await startWorker(redis.url, p, name, extra);
  workers.push(w);
  return w;
}

async function front(p: string, dataDir = mkdtempSync(join(tmpdir(), 'resflow-front-'))) {
  const f = await startFront(redis.url, p, dataDir);
  fronts.push(f);
  return f;
}

async function imagePixels(path: string) {
  return sharp(path).raw().toBuffer({ resolveWithObject: true });
}

const entryWorker = (entry: any): string => entry.status.messages.find((m: any) => m[0] === 'execution_start')?.[1]?.worker;

describe('farm on Redis', () => {
  it('20 prompts on two workers complete with the images this process renders, and history', async () => {
    const p = prefix();
    const f = await front(p);
    await Promise.all([worker(p, 'w1'), worker(p, 'w2')]);
    const ids: string[] = [];
    for (let seed = 0; seed < 20; seed++) ids.push((await post(`${f.url}/prompt`, { prompt: txt2img(seed) })).prompt_id);
    const done = await waitFor('20 results', async () => {
      const h = await history(f);
      return ids.every((id) => h[id]) && h;
    });
    const local = new Executor();
    for (const [seed, id] of ids.entries()) {
      const entry = done[id];
      expect(entry.status.status_str, `prompt ${seed}`).toBe('success');
      const [image] = entry.outputs['7'].images;
      const file = join(f.env.outputDir, image.subfolder, image.filename);
      expect(existsSync(file)).toBe(true);
      if (seed % 5 !== 0) continue;
      // The same prompt rendered here: the worker's image must be the same picture.
      const v = await validatePrompt(txt2img(seed, { prefix: `local${seed}` }), f.registry);
      if (!v.ok) throw new Error('invalid');
      const r = await local.run(v.graph);
      const [mine] = r.outputs['7']!.images as Array<{ filename: string; subfolder: string }>;
      const a = await imagePixels(file);
      const b = await imagePixels(join(f.env.outputDir, mine!.subfolder, mine!.filename));
      expect([a.info.width, a.info.height]).toEqual([64, 64]);
      let maxDiff = 0;
      for (let i = 0; i < a.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a.data[i]! - b.data[i]!));
      expect(maxDiff, `seed ${seed}`).toBeLessThanOrEqual(2);
    }
    const names = new Set(ids.map((id) => entryWorker(done[id])));
    expect([...names].sort()).toEqual(['w1', 'w2']);
    const queue = await (await fetch(`${f.url}/queue`)).json();
    expect(queue).toEqual({ queue_running: [], queue_pending: [] });
  });

  it('a worker killed mid-prompt: the prompt completes on another worker', async () => {
    const p = prefix();
    const f = await front(p);
    const doomed = await worker(p, 'doomed');
    const id = (await post(`${f.url}/prompt`, { prompt: txt2img(7, { size: 256, steps: 60 }) })).prompt_id;
    const others = [(await post(`${f.url}/prompt`, { prompt: txt2img(8) })).prompt_id, (await post(`${f.url}/prompt`, { prompt: txt2img(9) })).prompt_id];
    await waitFor('the long prompt to run', async () => (await (await fetch(`${f.url}/queue`)).json()).queue_running.some((t: any) => t[1] === id));
    await new Promise((r) => setTimeout(r, 500));
    await doomed.kill('SIGKILL');
    await worker(p, 'survivor');
    const h = await waitFor('every prompt after the kill', async () => {
      const h = await history(f);
      return [id, ...others].every((x) => h[x]) && h;
    });
    for (const x of [id, ...others]) {
      expect(h[x].status.status_str).toBe('success');
      expect(entryWorker(h[x])).toBe('survivor');
    }
  });

  it('a prompt whose workers keep dying is reported failed once its retries are used up', async () => {
    const p = prefix();
    const f = await front(p);
    const first = await worker(p, 'crash1', ['--max-retries', '0']);
    const id = (await post(`${f.url}/prompt`, { prompt: txt2img(12, { size: 256, steps: 400 }) })).prompt_id;
    await waitFor('the prompt to run', async () => (await (await fetch(`${f.url}/queue`)).json()).queue_running.some((t: any) => t[1] === id));
    await first.kill('SIGKILL');
    await worker(p, 'crash2', ['--max-retries', '0']);
    const h = await waitFor('the failure', async () => (await history(f))[id] && (await history(f)));
    expect(h[id].status.status_str).toBe('error');
    const error = h[id].status.messages.find((m: any) => m[0] === 'execution_error')[1];
    expect(error.exception_message).toMatch(/the prompt failed on the farm: .*stalled/);
    expect((await (await fetch(`${f.url}/queue`)).json()).queue_running).toEqual([]);
  });

  it('interrupt reaches the worker running the prompt', async () => {
    const p = prefix();
    const f = await front(p);
    await worker(p, 'wi');
    const id = (await post(`${f.url}/prompt`, { prompt: txt2img(11, { size: 256, steps: 400 }) })).prompt_id;
    await waitFor('the prompt to run', async () => (await (await fetch(`${f.url}/queue`)).json()).queue_running.some((t: any) => t[1] === id));
    const t0 = Date.now();
    await post(`${f.url}/interrupt`, { prompt_id: id });
    const h = await waitFor('the interrupted result', async () => (await history(f))[id] && (await history(f)));
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(h[id].status.status_str).toBe('error');
    expect(h[id].status.messages.map((m: any) => m[0])).toContain('execution_interrupted');
  });

  it('front priority: a front prompt runs before those queued earlier', async () => {
    const p = prefix();
    const f = await front(p);
    const blocker = (await post(`${f.url}/prompt`, { prompt: txt2img(20, { size: 128, steps: 30 }) })).prompt_id;
    const normal: string[] = [];
    for (let s = 21; s < 24; s++) normal.push((await post(`${f.url}/prompt`, { prompt: txt2img(s) })).prompt_id);
    const urgent = (await post(`${f.url}/prompt`, { prompt: txt2img(30), front: true })).prompt_id;
    await worker(p, 'wp');
    const h = await waitFor('all five', async () => {
      const h = await history(f);
      return [blocker, ...normal, urgent].every((x) => h[x]) && h;
    });
    const finished = Object.keys(h);
    expect(finished.indexOf(urgent)).toBeLessThan(Math.min(...normal.map((x) => finished.indexOf(x))));
  });

  it('a front server restart loses no queued prompt', async () => {
    const p = prefix();
    const dataDir = mkdtempSync(join(tmpdir(), 'resflow-front-restart-'));
    const first = await front(p, dataDir);
    const ids: string[] = [];
    for (let s = 40; s < 43; s++) ids.push((await post(`${first.url}/prompt`, { prompt: txt2img(s) })).prompt_id);
    await first.server.close();
    const second = await front(p, dataDir);
    const queued = await (await fetch(`${second.url}/queue`)).json();
    expect(queued.queue_pending.map((t: any) => t[1]).sort()).toEqual([...ids].sort());
    await worker(p, 'wr');
    const h = await waitFor('the queued prompts after the restart', async () => {
      const h = await history(second);
      return ids.every((x) => h[x]) && h;
    });
    for (const x of ids) {
      expect(h[x].status.status_str).toBe('success');
      const [image] = h[x].outputs['7'].images;
      expect(readFileSync(join(second.env.outputDir, image.subfolder, image.filename)).subarray(1, 4).toString()).toBe('PNG');
    }
  });

  it('a worker that lacks a model refuses the prompt with the model named', async () => {
    const p = prefix();
    const f = await front(p);
    copyFileSync(join(f.env.folders.modelsDir, 'checkpoints', DEMO_CHECKPOINT), join(f.env.folders.modelsDir, 'checkpoints', 'only-on-front.safetensors'));
    await worker(p, 'wm');
    const id = (await post(`${f.url}/prompt`, { prompt: txt2img(50, { ckpt: 'only-on-front.safetensors' }) })).prompt_id;
    const h = await waitFor('the refusal', async () => (await history(f))[id] && (await history(f)));
    expect(h[id].status.status_str).toBe('error');
    const error = h[id].status.messages.find((m: any) => m[0] === 'execution_error')[1];
    expect(error.exception_message).toMatch(/worker wm cannot run this prompt: checkpoints "only-on-front.safetensors" is not in this worker's model folders/);
  });
});
