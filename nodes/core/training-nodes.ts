import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { ResAdapterFiles } from '../../runtime/adapters/resadapter.js';
import { InterruptedError } from '../../runtime/executor/errors.js';
import { defaultCacheDir } from '../../runtime/graph/session.js';
import { processLatentIn } from '../../runtime/sampling/model-sampling.js';
import { DatasetBatchSource } from '../../runtime/training/batches.js';
import { parseAspects, parseResolutions, RECIPE_ASPECTS } from '../../runtime/training/buckets.js';
import { describeDataset, scanDataset, type ScannedDataset } from '../../runtime/training/dataset.js';
import { DEMO_DATASET, ensureDemoDataset } from '../../runtime/training/demo-dataset.js';
import { EncodeCache, type DatasetEncoders } from '../../runtime/training/encode-cache.js';
import { writeResAdapter } from '../../runtime/training/export.js';
import { lossChartPng, metricsLine } from '../../runtime/training/loss-chart.js';
import { trainResAdapter, type TrainedResAdapter } from '../../runtime/training/run.js';
import type { Vae } from '../../runtime/models/vae/index.js';
import { modelFamily, type ModelFamily } from '../../runtime/models/families/registry.js';
import type { RuntimeEnv } from '../env.js';
import type { NodeSpec } from '../spec.js';
import { encodeText } from './conditioning-nodes.js';
import type { ClipValue, ModelValue } from './types.js';

/** RESADAPTER_DATASET: the scanned folder plus the cache that turns its images and captions into tensors. */
export interface DatasetValue {
  dataset: ScannedDataset;
  cache: EncodeCache;
}

/** Samples per fixed validation batch: timesteps spread evenly over the schedule. */
const VALIDATION_BATCH = 8;
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

function datasetFolder(env: RuntimeEnv, folder: string): string {
  return isAbsolute(folder) ? folder : resolve(env.inputDir, folder);
}

/** Changes whenever a file of the folder is added, removed, renamed or rewritten. */
function folderSignature(path: string): string {
  if (!existsSync(path)) return 'missing';
  const h = createHash('sha256');
  for (const f of readdirSync(path).sort()) {
    const st = statSync(join(path, f));
    h.update(`${f}\0${st.size}\0${st.mtimeMs}\n`);
  }
  return h.digest('hex');
}

/** Captions are literal text: ComfyUI's (word:1.2) weighting must not apply to them. */
const literal = (caption: string) => caption.replace(/\\/g, '\\\\').replace(/\(/g, '\\(').replace(/\)/g, '\\)');

function checkName(what: string, value: string): string {
  if (!NAME.test(value)) throw new Error(`${what} "${value}" must be a plain name (letters, digits, _ . -), not a path`);
  return value;
}

/** y of a training sample for families whose UNet takes one, as the family builds it (SDXL: the bucket's size, no crop). */
function trainingLabel(family: ModelFamily, adm: number | null) {
  const build = family.training.labelVector;
  if (!adm || !build) throw new Error(`TrainResAdapter: this ${family.label} UNet has no label embedding (y input) to train with`);
  return (pooled: Float32Array | undefined, size: { width: number; height: number }) => {
    if (!pooled) throw new Error(`TrainResAdapter: the dataset has no pooled text embeddings; encode it with the CLIP of this ${family.label} checkpoint`);
    return build(pooled, size, adm);
  };
}

export function trainingNodes(env: RuntimeEnv): NodeSpec[] {
  const cacheDir = join(defaultCacheDir(), 'training');
  return [
    {
      name: 'ResAdapterDataset',
      displayName: 'ResAdapter Dataset',
      category: 'training/resadapter',
      description:
        'A folder of images with same-name .txt captions (or a captions.jsonl), bucketed by aspect ratio; training resolutions ' +
        'are drawn with p(x) ∝ |x − base|². Latents and text embeddings are cached on disk, so later epochs and runs skip the VAE and text encoder.',
      inputs: {
        required: {
          vae: { type: 'VAE' },
          clip: { type: 'CLIP' },
          folder: { type: 'STRING', default: DEMO_DATASET, tooltip: 'relative to the input folder, or absolute' },
          base_resolution: { type: 'INT', default: 512, min: 64, max: 4096, step: 8, tooltip: 'the resolution the model was trained at; never sampled' },
          resolutions: { type: 'STRING', default: '128, 256, 384, 640, 768, 896, 1024' },
          aspect_ratios: { type: 'STRING', default: RECIPE_ASPECTS },
          bucket_step: { type: 'INT', default: 64, min: 8, max: 256, step: 8, tooltip: 'bucket sides are multiples of this', advanced: true },
          on_problem: { type: 'COMBO', options: ['error', 'skip'], default: 'error', tooltip: 'corrupt images, missing captions, images below the smallest bucket' },
        },
      },
      outputs: [{ type: 'RESADAPTER_DATASET', name: 'dataset' }],
      isChanged: ({ folder }) => folderSignature(datasetFolder(env, String(folder))),
      async execute({ vae, clip, folder, base_resolution, resolutions, aspect_ratios, bucket_step, on_problem }, ctx) {
        const dir = datasetFolder(env, String(folder));
        if (String(folder) === DEMO_DATASET && !existsSync(dir)) await ensureDemoDataset(env.inputDir);
        const dataset = await scanDataset({
          folder: dir,
          resolutions: parseResolutions(String(resolutions)),
          baseResolution: Number(base_resolution),
          aspects: parseAspects(String(aspect_ratios)),
          bucketStep: Number(bucket_step),
          onProblem: on_problem === 'skip' ? 'skip' : 'error',
          cacheDir,
          progress: (done, total) => ctx.progress(done, total),
        });
        const v = vae as Vae;
        const c = clip as ClipValue;
        const encoders: DatasetEncoders = {
          encodeImage: async (img) => {
            const z = await v.encode(img);
            return { data: z.data, dims: [...z.shape] };
          },
          encodeText: async (caption) => {
            const r = await encodeText(c, literal(caption));
            // Families whose UNet takes the pooled embedding (SDXL's y) cache it with the context.
            return { data: r.context, dims: [...r.contextShape], ...(modelFamily(c.family).conditioning.pooled && r.pooled ? { pooled: r.pooled } : {}) };
          },
        };
        const summary = describeDataset(dataset);
        ctx.log(summary);
        const value: DatasetValue = { dataset, cache: await EncodeCache.create(cacheDir, encoders) };
        return { ui: { text: [summary] }, result: [value] };
      },
    },
    {
      name: 'TrainResAdapter',
      displayName: 'Train ResAdapter',
      category: 'training/resadapter',
      description:
        "Trains a ResAdapter for the model (the paper's recipe by default): a conv LoRA on every down/upsampler and the resnet " +
        'GroupNorms, epsilon-prediction MSE, AdamW. The norms learn only from batches above the base resolution. Checkpoints go to ' +
        'output/training/<run_name>/; with resume on, a re-run continues exactly where the last checkpoint stopped. Adapters ' +
        'already applied to the model count as part of the frozen base.',
      inputs: {
        required: {
          model: { type: 'MODEL' },
          dataset: { type: 'RESADAPTER_DATASET' },
          steps: { type: 'INT', default: 20000, min: 1, max: 10_000_000 },
          batch_size: { type: 'INT', default: 32, min: 1, max: 4096 },
          micro_batch: { type: 'INT', default: 4, min: 1, max: 4096, tooltip: 'samples per forward/backward; gradients are accumulated up to batch_size' },
          learning_rate: { type: 'FLOAT', default: 1e-4, min: 0, max: 1, step: 1e-5, round: false },
          beta1: { type: 'FLOAT', default: 0.95, min: 0, max: 0.9999, step: 0.01, round: false, advanced: true },
          beta2: { type: 'FLOAT', default: 0.99, min: 0, max: 0.99999, step: 0.001, round: false, advanced: true },
          weight_decay: { type: 'FLOAT', default: 0.01, min: 0, max: 1, step: 0.001, round: false, tooltip: 'LoRA matrices only', advanced: true },
          warmup_steps: { type: 'INT', default: 0, min: 0, max: 1_000_000 },
          grad_clip: { type: 'FLOAT', default: 0, min: 0, max: 1000, step: 0.1, round: false, tooltip: 'max global gradient norm; 0 = off' },
          seed: { type: 'INT', default: 0, min: 0, max: 2 ** 53 - 1 },
          rank: { type: 'INT', default: 16, min: 1, max: 256 },
          alpha: { type: 'FLOAT', default: 8, min: 0.01, max: 1024, step: 0.5, round: false },
          checkpoint_every: { type: 'INT', default: 500, min: 0, max: 1_000_000, tooltip: '0 = only at the end and on interrupt' },
          run_name: { type: 'STRING', default: 'resadapter' },
          resume: { type: 'BOOLEAN', default: true, tooltip: "continue from the run's last checkpoint if there is one" },
          recompute: {
            type: 'BOOLEAN',
            default: true,
            tooltip: 'train the UNet block by block, recomputing each block for its backward: same gradients, about half the memory (SD1.5 at 512²: 4.1 GB instead of 9.3 GB), up to 1.6× the step time',
            advanced: true,
          },
        },
        optional: {
          validate_every: {
            type: 'INT',
            default: 0,
            min: 0,
            max: 1_000_000,
            tooltip: 'measure the loss on fixed batches (one per training resolution) every N steps and chart it; 0 = off',
            advanced: true,
          },
          offset_noise: {
            type: 'FLOAT',
            default: 0,
            min: 0,
            max: 1,
            step: 0.01,
            round: false,
            tooltip: 'per-image, per-channel constant added to the training noise (its standard deviation); match what the base model was trained with (ResFlow Shapes: 0.3, SD1.5: 0)',
            advanced: true,
          },
          norm_lr_scale: {
            type: 'FLOAT',
            default: 1,
            min: 0,
            max: 10,
            step: 0.05,
            round: false,
            tooltip: "the norms' learning rate as a multiple of learning_rate: the replacement norms apply at every resolution, the base's too, so a smaller rate keeps the model unchanged there",
            advanced: true,
          },
          start_from: { type: 'RESADAPTER', tooltip: 'fine-tune this ResAdapter (same rank) instead of starting fresh' },
        },
      },
      outputs: [{ type: 'TRAINED_RESADAPTER', name: 'resadapter' }],
      async execute(i, ctx) {
        const m = i.model as ModelValue;
        const family = modelFamily(m.family);
        if (!family.training.supported) throw new Error(`TrainResAdapter: training a ResAdapter for ${family.name} models is not supported (no released ResAdapter layout to match)`);
        const { dataset, cache } = i.dataset as DatasetValue;
        const runName = checkName('run_name', String(i.run_name));
        const runDir = join(env.outputDir, 'training', runName);
        const steps = Number(i.steps);
        const seed = Number(i.seed);
        const base = m.unet.base;
        const overrides = m.unet.overrides();
        const source = new DatasetBatchSource(dataset, cache, {
          seed,
          numTimesteps: m.sampling.numTimesteps,
          toModel: (z) => processLatentIn(m.sampling.latentFormat, z),
          offsetNoise: Number(i.offset_noise ?? 0),
          ...(family.conditioning.adm ? { labelVector: trainingLabel(family, m.unet.base.config.admInChannels) } : {}),
        });
        let lastPreview = -Infinity;
        let lastLog = -Infinity;
        const title = `TrainResAdapter ${runName}`;
        const result = await trainResAdapter({
          model: { weights: base.weights, config: base.config, alphasCumprod: m.sampling.alphasCumprod, ...(overrides ? { overrides } : {}) },
          settings: {
            batchSize: Number(i.batch_size),
            microBatch: Math.min(Number(i.micro_batch), Number(i.batch_size)),
            adamw: { lr: Number(i.learning_rate), beta1: Number(i.beta1), beta2: Number(i.beta2), eps: 1e-8, weightDecay: Number(i.weight_decay) },
            warmupSteps: Number(i.warmup_steps),
            normLrScale: Number(i.norm_lr_scale ?? 1),
            gradClip: Number(i.grad_clip),
            seed,
            recompute: Boolean(i.recompute),
          },
          rank: Number(i.rank),
          alpha: Number(i.alpha),
          targets: family.resAdapter.targets,
          steps,
          source,
          runDir,
          checkpointEvery: Number(i.checkpoint_every),
          resume: Boolean(i.resume),
          ...(i.start_from ? { startFrom: (i.start_from as { files: ResAdapterFiles }).files } : {}),
          signal: ctx.signal,
          log: (s) => ctx.log(s),
          ...(Number(i.validate_every ?? 0) > 0 ? { validation: { every: Number(i.validate_every), batches: await source.fixedBatches(VALIDATION_BATCH) } } : {}),
          onStep: async (metrics, history, validation) => {
            const now = performance.now();
            const line = metricsLine(metrics, steps);
            if (now - lastLog > 10_000 || metrics.step === steps) {
              lastLog = now;
              ctx.log(line);
            }
            const shown = { loss: metrics.loss, lr: metrics.lr, 'samples/s': metrics.samplesPerSecond };
            if (now - lastPreview > 2000 || metrics.step === steps) {
              lastPreview = now;
              ctx.progress(metrics.step, steps, { format: 'PNG', data: await lossChartPng([...history], steps, title, line, [...validation]) }, shown);
            } else ctx.progress(metrics.step, steps, undefined, shown);
          },
        });
        if (result.status === 'interrupted') {
          ctx.log(`interrupted after step ${result.trained.steps}; checkpoint kept in ${runDir}`);
          throw new InterruptedError();
        }
        const last = result.trained.history.at(-1);
        const summary = `${result.trained.steps} step(s)${result.startedAt ? ` (resumed at ${result.startedAt})` : ''}, final loss ${last ? last[1].toPrecision(4) : 'n/a'}; checkpoint in ${runDir}`;
        const chart = await lossChartPng(result.trained.history, Math.max(steps, result.trained.steps), title, summary, result.trained.validation);
        // The editor's subfolder is a URL path: always '/'.
        const sub = `training/${runName}`;
        mkdirSync(join(env.tempDir, sub), { recursive: true });
        writeFileSync(join(env.tempDir, sub, 'loss.png'), chart);
        writeFileSync(join(runDir, 'loss.png'), chart);
        const trained: TrainedResAdapter = result.trained;
        return { ui: { text: [summary], images: [{ filename: 'loss.png', subfolder: sub, type: 'temp' }] }, result: [trained] };
      },
    },
    {
      name: 'SaveResAdapter',
      displayName: 'Save ResAdapter',
      category: 'training/resadapter',
      description:
        'Writes the trained adapter as the released ResAdapter files (pytorch_lora_weights.safetensors, a kohya F16 conv LoRA; ' +
        'diffusion_pytorch_model.safetensors, the F32 norms under diffusers names) to models/resadapters/<name>/, where ' +
        'Load ResAdapter and the official diffusers pipelines read it.',
      inputs: { required: { resadapter: { type: 'TRAINED_RESADAPTER' }, name: { type: 'STRING', default: 'my-resadapter' } } },
      outputs: [{ type: 'RESADAPTER' }],
      outputNode: true,
      execute({ resadapter, name }) {
        const t = resadapter as TrainedResAdapter;
        const dir = join(env.folders.folder('resadapters'), checkName('name', String(name)));
        const files = writeResAdapter(dir, t.weights, t.layout, t.params, {
          'resflow.training': JSON.stringify({ steps: t.steps, rank: t.layout.rank, alpha: t.layout.alpha, base: t.weights.file.path.split(/[\\/]/).pop(), ...t.settings }),
        });
        return { ui: { text: [`saved ${files.lora} and ${files.norm}`] }, result: [{ files }] };
      },
    },
  ];
}
