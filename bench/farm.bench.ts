/**
 * Farm throughput: the same batch of small prompts through a front server and Redis, on 1 worker and on 2.
 * On this 2-core machine the fair comparison is one worker using both cores against two 1-thread workers;
 * on real farms, run one worker per machine. Needs redis-server (Debian's package).
 *
 *   npx tsx bench/farm.bench.ts [--prompts 48] [--size 256] [--steps 8]
 */
import { mkdtempSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { history, post, startFront, startRedis, startWorker, txt2img, waitFor, type WorkerProcess } from '../test/farm/helpers.js';
import { reportLoad } from './lib.js';

const { values } = parseArgs({ options: { prompts: { type: 'string', default: '48' }, size: { type: 'string', default: '256' }, steps: { type: 'string', default: '8' } } });
const count = Number(values.prompts);
const size = Number(values.size);
const steps = Number(values.steps);

reportLoad();
console.log(`cpu: ${cpus()[0]?.model} × ${cpus().length}; ${count} prompts of ${size}² × ${steps} steps (demo model)`);
const redis = await startRedis();

async function round(label: string, workerArgs: string[][]): Promise<number> {
  const prefix = `bench${process.pid}-${label.replace(/[^A-Za-z0-9]+/g, '-')}`;
  const front = await startFront(redis.url, prefix, mkdtempSync(join(tmpdir(), 'resflow-farm-bench-')));
  const workers: WorkerProcess[] = [];
  for (const [i, extra] of workerArgs.entries()) workers.push(await startWorker(redis.url, prefix, `w${i}`, extra));
  // Warm-up: one prompt per worker compiles its sessions before the clock starts.
  const warm: string[] = [];
  for (let i = 0; i < workers.length; i++) warm.push((await post(`${front.url}/prompt`, { prompt: txt2img(1000 + i, { size, steps }) })).prompt_id);
  await waitFor('warm-up', async () => {
    const h = await history(front);
    return warm.every((id) => h[id]);
  });
  const t0 = performance.now();
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push((await post(`${front.url}/prompt`, { prompt: txt2img(i, { size, steps }) })).prompt_id);
  await waitFor('the batch', async () => {
    const h = await history(front);
    return ids.every((id) => h[id]?.status.status_str === 'success');
  }, 30 * 60_000);
  const seconds = (performance.now() - t0) / 1000;
  for (const w of workers) await w.kill();
  await front.server.close();
  const perMinute = (count / seconds) * 60;
  console.log(`${label.padEnd(28)} ${seconds.toFixed(1)} s  ${perMinute.toFixed(1)} prompts/min`);
  return perMinute;
}

const one = await round('1 worker, 2 threads', [['--threads', '2']]);
const two = await round('2 workers, 1 thread each', [['--threads', '1'], ['--threads', '1']]);
console.log(`throughput ratio (2 workers / 1 worker): ${(two / one).toFixed(2)}`);
redis.stop();
process.exit(0);
