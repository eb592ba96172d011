import { randnLike } from '../../sampling/torch-rng.js';
import { ModelSampling } from '../../sampling/model-sampling.js';
import { defaultNoiseSampler, sample } from '../../sampling/sample.js';
import { scheduleSigmas } from '../../sampling/schedulers.js';
import type { Conditioning, EpsModel, Latent, NoiseSampler, Shape4 } from '../../sampling/types.js';
import { unetEpsModel } from '../../pipeline/eps-model.js';
import type { ConformanceCase } from '../case.js';
import type { CaseModels } from '../models.js';
import type { CaseKind } from './types.js';

export interface RecordedRun {
  name: string;
  sampler: string;
  scheduler: string;
  steps: number;
  cfg: number;
  denoise: number;
  seed: number;
}

export function stack(rows: Float32Array[]): Float32Array {
  const out = new Float32Array(rows.reduce((s, r) => s + r.length, 0));
  let off = 0;
  for (const r of rows) {
    out.set(r, off);
    off += r.length;
  }
  return out;
}

/** Replays recorded draws in order (dpmpp_2m_sde: the oracle's substitute for torchsde's Brownian tree). */
function replayNoise(calls: Float32Array, per: number): NoiseSampler {
  let i = 0;
  return () => calls.slice(per * i, per * ++i);
}

/**
 * Runs one recorded sampler run through the real UNet and checks sigmas, per-step x and denoised, noise
 * draws and the final samples under `<prefix>/...`.
 */
export async function checkRun(
  c: ConformanceCase,
  models: CaseModels,
  prefix: string,
  run: RecordedRun,
  io: { latent: Latent; positive: Conditioning; negative: Conditioning; noise: Float32Array },
  opts: { modelSampling?: ModelSampling; model?: EpsModel; noiseSampler?: NoiseSampler } = {},
): Promise<Latent> {
  const ms = opts.modelSampling ?? new ModelSampling();
  const shape = io.latent.shape;
  const per = io.latent.data.length;
  const sigmas = scheduleSigmas(ms, run.scheduler, run.steps, { denoise: run.denoise, sampler: run.sampler });
  if (c.hasExpected(`${prefix}/sigmas`)) c.check(`${prefix}/sigmas`, sigmas);
  const recordedCalls = `${prefix}/noise_calls`;
  const draws: Float32Array[] = [];
  let noiseSampler: NoiseSampler;
  if (opts.noiseSampler) noiseSampler = opts.noiseSampler;
  else if (run.sampler === 'dpmpp_2m_sde' && c.hasExpected(recordedCalls)) {
    noiseSampler = replayNoise(c.expected.readFloat32(recordedCalls), per);
    c.consumed.add(recordedCalls);
  } else {
    const own = defaultNoiseSampler(run.seed, shape);
    noiseSampler = (s, sn) => {
      const d = own(s, sn);
      draws.push(Float32Array.from(d));
      return d;
    };
  }
  const xs: Float32Array[] = [];
  const ds: Float32Array[] = [];
  const out = await sample({
    model: opts.model ?? unetEpsModel(models.unet(c)),
    modelSampling: ms,
    sampler: run.sampler,
    scheduler: run.scheduler,
    steps: run.steps,
    cfg: run.cfg,
    denoise: run.denoise,
    seed: run.seed,
    latent: io.latent,
    positive: io.positive,
    negative: io.negative,
    noise: io.noise,
    noiseSampler,
    onStep: (p) => {
      xs.push(Float32Array.from(p.x));
      ds.push(Float32Array.from(p.denoised));
    },
  });
  if (c.hasExpected(`${prefix}/step_x`)) c.check(`${prefix}/step_x`, stack(xs));
  if (c.hasExpected(`${prefix}/step_denoised`)) c.check(`${prefix}/step_denoised`, stack(ds));
  if (draws.length && c.hasExpected(recordedCalls)) c.check(recordedCalls, stack(draws));
  c.check(`${prefix}/samples`, out.data);
  return out;
}

function cond(c: ConformanceCase, name: string): Conditioning {
  const t = c.input(name);
  return { context: t.data as Float32Array, contextShape: [...t.dims] as [number, number, number] };
}

function runsOf(c: ConformanceCase): RecordedRun[] {
  const p = c.json.params ?? {};
  if (Array.isArray(p.runs)) return p.runs as RecordedRun[];
  return [{ name: String(p.name ?? `${p.sampler}/${p.scheduler}`), sampler: p.sampler, scheduler: p.scheduler, steps: p.steps, cfg: p.cfg, denoise: p.denoise ?? 1, seed: p.seed }];
}

/** `samplers`, `img2img`, `samplers-controlnet`: recorded KSampler runs on given contexts and noise. */
export const samplingKind: CaseKind = {
  name: 'sampling',
  matches: (c) => ['samplers', 'img2img', 'samplers-controlnet'].includes(c.name),
  async run(c, models) {
    const noise = c.input('noise');
    const shape = [...noise.dims] as Shape4;
    const latent: Latent = c.hasInput('latent_image')
      ? { data: c.input('latent_image').data as Float32Array, shape }
      : { data: new Float32Array(noise.data.length), shape };
    if (c.hasExpected('model_sampling/sigmas')) {
      const ms = new ModelSampling();
      c.check('model_sampling/sigmas', ms.sigmas);
      c.check('model_sampling/log_sigmas', ms.logSigmas);
    }
    const positive = cond(c, 'cond');
    const negative = cond(c, 'uncond');
    if (c.hasInput('hint')) {
      const cn = await models.controlnet(c);
      const h = c.input('hint');
      const p = c.json.params;
      const app = { controlNet: cn, hint: h.data as Float32Array, hintShape: [...h.dims] as Shape4, strength: p.strength, startPercent: p.start_percent, endPercent: p.end_percent };
      positive.controls = [app];
      negative.controls = [app];
    }
    for (const run of runsOf(c)) {
      // Our own generator must reproduce the stored initial noise before we feed it.
      const own = randnLike(run.seed, shape);
      if (own.some((v, i) => v !== noise.data[i])) throw new Error(`torch RNG mismatch for seed ${run.seed}`);
      const prefix = c.hasExpected(`${run.name}/samples`) ? run.name : `${run.sampler}/${run.scheduler}`;
      await checkRun(c, models, prefix, run, { latent, positive, negative, noise: noise.data as Float32Array });
    }
  },
};

/** `pipeline-txt2img`: token ids → CLIP → KSampler → VAE decode, every stage checked. */
export const pipelineKind: CaseKind = {
  name: 'pipeline-txt2img',
  matches: (c) => c.name === 'pipeline-txt2img' && !c.json.models?.checkpoint?.clip_g_config,
  async run(c, models) {
    const { ClipTextEncoder, clipConfigFromHF } = await import('../../models/clip/index.js');
    const { Vae } = await import('../../models/vae/index.js');
    const p = c.json.params;
    const ckpt = models.checkpointPath(c);
    const clipCfg = c.json.models?.checkpoint?.clip_config;
    const clip = await ClipTextEncoder.load(ckpt, clipCfg ? { config: clipConfigFromHF(clipCfg) } : {});
    const encode = async (name: string) => {
      const r = await clip.encodeTokens([Array.from(c.input(name).data, Number)]);
      return { context: r.cond, contextShape: r.condDims } as Conditioning;
    };
    const positive = await encode('pos_tokens');
    const negative = await encode('neg_tokens');
    c.check('cond', positive.context);
    c.check('uncond', negative.context);
    const shape = p.latent as Shape4;
    const noise = randnLike(p.seed, shape);
    c.check('noise', noise);
    const latent: Latent = { data: new Float32Array(noise.length), shape };
    const run: RecordedRun = { name: 'sample', sampler: p.sampler, scheduler: p.scheduler, steps: p.steps, cfg: p.cfg, denoise: 1, seed: p.seed };
    // Decode what we sampled, not the expected latent: the check covers the whole chain.
    const z = await checkRun(c, models, 'sample', run, { latent, positive, negative, noise });
    const vae = await Vae.load(ckpt);
    c.check('image_raw', (await vae.decodeRaw(z)).data);
    c.check('image', (await vae.decode(z)).data);
  },
};
