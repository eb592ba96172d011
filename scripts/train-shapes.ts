/**
 * npm run train:shapes -- [--state DIR] [--export [PATH]] [--export-only] [--phase vae|unet|decoder] [--vae-steps N] ...
 * Trains ResFlow Shapes from its seed (VAE → latent cache → UNet → decoder refinement), resuming from DIR
 * when it holds a run. `--phase` runs one phase only (the decoder phase may run beside the UNet's).
 * Ctrl-C saves and exits; rerun the same command to continue on the same trajectory.
 */
import { join } from 'node:path';
import { DEFAULT_TRAIN_CONFIG, ShapesTraining, type Progress, type ShapesTrainConfig } from '../runtime/shapes/train-run.js';

const SHIPPED = join('assets', 'shapes', 'resflow-shapes.safetensors');

const PHASES = ['vae', 'unet', 'decoder'] as const;
type Phase = (typeof PHASES)[number];

function parse(argv: string[]): { state: string; exportPath?: string; exportOnly: boolean; phases: Phase[]; cfg: ShapesTrainConfig } {
  let phases: Phase[] = [...PHASES];
  const cfg: ShapesTrainConfig = { ...DEFAULT_TRAIN_CONFIG };
  let state = join('.cache', 'shapes-train');
  let exportPath: string | undefined;
  let exportOnly = false;
  const numeric: Record<string, keyof ShapesTrainConfig> = {
    '--seed': 'seed', '--vae-steps': 'vaeSteps', '--vae-batch': 'vaeBatch', '--vae-lr': 'vaeLr', '--latents': 'latents',
    '--unet-steps': 'unetSteps', '--unet-batch': 'unetBatch', '--unet-lr': 'unetLr', '--unet-ema': 'unetEma', '--save-every': 'saveEvery', '--decoder-steps': 'decoderSteps', '--decoder-lr': 'decoderLr', '--offset-noise': 'offsetNoise', '--threads': 'threads',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--state') state = argv[++i]!;
    else if (a === '--phase') {
      const p = argv[++i] as Phase;
      if (!PHASES.includes(p)) throw new Error(`--phase must be one of ${PHASES.join(', ')}`);
      phases = [p];
    }
    else if (a === '--export' || a === '--export-only') {
      if (a === '--export-only') exportOnly = true;
      exportPath = argv[i + 1] && !argv[i + 1]!.startsWith('--') ? argv[++i]! : SHIPPED;
    } else if (numeric[a]) {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v)) throw new Error(`${a} needs a number`);
      (cfg as unknown as Record<string, number>)[numeric[a]] = v;
    } else throw new Error(`unknown option ${a}`);
  }
  return { state, ...(exportPath ? { exportPath } : {}), exportOnly, phases, cfg };
}

function clock(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  const m = Math.floor(s / 60);
  return `${Math.floor(m / 60)}:${String(m % 60).padStart(2, '0')}:${String(Math.floor(s % 60)).padStart(2, '0')}`;
}

async function main(): Promise<void> {
  const { state, exportPath, exportOnly, phases, cfg } = parse(process.argv.slice(2));
  const abort = new AbortController();
  process.on('SIGINT', () => {
    process.stderr.write('\ninterrupted: saving after the current step…\n');
    abort.abort();
  });
  const started = performance.now();
  let phaseStart = performance.now();
  let phase = '';
  let avg = 0;
  let n0 = 0;
  const tty = process.stderr.isTTY;
  const onProgress = (p: Progress) => {
    if (p.phase !== phase) {
      if (phase) process.stderr.write('\n');
      phase = p.phase;
      phaseStart = performance.now();
      avg = 0;
      n0 = p.step - 1;
    }
    const done = p.step - n0;
    avg = (performance.now() - phaseStart) / 1000 / Math.max(1, done);
    const width = 30;
    const fill = Math.round((p.step / p.total) * width);
    const line = `${p.phase.padEnd(6)} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${p.step}/${p.total} loss ${Number.isNaN(p.loss) ? '-' : p.loss.toFixed(4)} ${avg.toFixed(2)} s/step ETA ${clock(avg * (p.total - p.step))} elapsed ${clock((performance.now() - started) / 1000)}${p.detail ? ` ${p.detail}` : ''}`;
    if (tty) process.stderr.write(`\r${line}`);
    else if (p.step % 25 === 0 || p.step === p.total) process.stderr.write(`${line}\n`);
  };
  const run = new ShapesTraining(state, cfg, { onProgress, log: (s) => process.stderr.write(`${s}\n`), signal: abort.signal });
  run.prepare();
  if (!exportOnly) {
    if (phases.includes('vae') && !(await run.trainVae())) return;
    if (phases.includes('unet') && !(await run.trainUnet(await run.buildCache()))) return;
    if (phases.includes('decoder') && cfg.decoderSteps > 0 && !(await run.trainDecoder())) return;
    process.stderr.write(`\ntraining done in ${clock((performance.now() - started) / 1000)} (state in ${state})\n`);
  }
  if (exportPath) {
    const r = run.exportTo(exportPath);
    process.stderr.write(`wrote ${exportPath} (UNet step ${r.unetStep})\n`);
  }
}

main().catch((e) => {
  process.stderr.write(`train-shapes: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
