import { conditioningAdm, sdxlModelSampling, type SdxlConditioning } from '../../models/sdxl/index.js';
import { sdxlEpsModel } from '../../pipeline/sdxl-eps-model.js';
import { randnLike } from '../../sampling/torch-rng.js';
import type { Latent, Shape4 } from '../../sampling/types.js';
import type { ConformanceCase } from '../case.js';
import type { CaseModels } from '../models.js';
import { caseTextEncoder, caseVae, ids, isSdxlCase, sizesFromJson } from './sdxl-common.js';
import type { CaseKind } from './types.js';
import { checkRun as checkSamplerRun, type RecordedRun } from './sampling.js';

/**
 * One KSampler run on the SDXL UNet through the shared runner, with SDXL's model sampling and y. The initial
 * noise is given (the case stores it); neither sampler draws more.
 */
function checkRun(c: ConformanceCase, models: CaseModels, prefix: string, run: RecordedRun, io: { latent: Latent; positive: SdxlConditioning; negative: SdxlConditioning; noise: Float32Array }): Promise<Latent> {
  return checkSamplerRun(c, models, prefix, run, io, {
    modelSampling: sdxlModelSampling(),
    model: sdxlEpsModel(models.unet(c), io.positive, io.negative, io.latent.shape),
    noiseSampler: () => {
      throw new Error(`${run.sampler} drew sampler noise; the case records none`);
    },
  });
}

/** y_cond / y_uncond as the sampler will build them for this latent. */
function checkAdm(c: ConformanceCase, models: CaseModels, positive: SdxlConditioning, negative: SdxlConditioning, shape: Shape4): void {
  const adm = models.unet(c).config.admInChannels ?? undefined;
  if (c.hasExpected('y_cond')) c.check('y_cond', conditioningAdm(positive, shape, adm));
  if (c.hasExpected('y_uncond')) c.check('y_uncond', conditioningAdm(negative, shape, adm));
}

function conditioning(c: ConformanceCase, contextName: string, pooledName: string, sizes?: unknown): SdxlConditioning {
  const ctx = c.input(contextName);
  const pooled = c.input(pooledName);
  const out: SdxlConditioning = {
    context: ctx.data as Float32Array,
    contextShape: [...ctx.dims] as [number, number, number],
    pooled: pooled.data as Float32Array,
    pooledShape: [...pooled.dims] as [number, number],
  };
  if (sizes && typeof sizes === 'object') out.sizes = sizesFromJson(sizes as Record<string, unknown>);
  return out;
}

/** SDXL `samplers`: recorded KSampler runs on given contexts, pooled outputs and noise. */
export const sdxlSamplersKind: CaseKind = {
  name: 'sdxl-samplers',
  matches: (c) => c.name.startsWith('samplers') && !c.hasInput('hint') && isSdxlCase(c),
  async run(c, models) {
    const p = c.json.params;
    const noise = c.input('noise');
    const shape = [...noise.dims] as Shape4;
    const latent: Latent = { data: new Float32Array(noise.data.length), shape };
    if (c.hasExpected('model_sampling/sigmas')) c.check('model_sampling/sigmas', sdxlModelSampling().sigmas);
    // pos_sizes is a dict; neg_sizes is a note ("none given -> ..."), i.e. derived from the latent.
    const positive = conditioning(c, 'cond', 'pooled_cond', p.pos_sizes);
    const negative = conditioning(c, 'uncond', 'pooled_uncond', p.neg_sizes);
    checkAdm(c, models, positive, negative, shape);
    for (const run of p.runs as RecordedRun[]) {
      const own = randnLike(run.seed, shape);
      if (own.some((v, i) => v !== noise.data[i])) throw new Error(`torch RNG mismatch for seed ${run.seed}`);
      await checkRun(c, models, run.name, { ...run, denoise: run.denoise ?? 1 }, { latent, positive, negative, noise: noise.data as Float32Array });
    }
  },
};

/** SDXL `pipeline-txt2img`: token ids -> both encoders -> CLIPTextEncodeSDXL / plain conditioning -> KSampler -> VAE decode. */
export const sdxlPipelineKind: CaseKind = {
  name: 'sdxl-pipeline-txt2img',
  matches: (c) => c.name.startsWith('pipeline-txt2img') && isSdxlCase(c),
  async run(c, models) {
    const p = c.json.params;
    const text = await caseTextEncoder(c, models);
    const encode = async (side: 'pos' | 'neg', sizes: unknown): Promise<SdxlConditioning> => {
      const r = await text.encodeTokens({ l: { tokens: [ids(c, `${side}_tokens_l`)] }, g: { tokens: [ids(c, `${side}_tokens_g`)] } });
      const out: SdxlConditioning = { context: r.context, contextShape: r.contextShape, pooled: r.pooled, pooledShape: r.pooledShape };
      if (sizes && typeof sizes === 'object') out.sizes = sizesFromJson(sizes as Record<string, unknown>);
      return out;
    };
    const positive = await encode('pos', p.pos_sizes);
    const negative = await encode('neg', p.neg_sizes);
    c.check('cond', positive.context);
    c.check('uncond', negative.context);
    c.check('pooled_cond', positive.pooled);
    c.check('pooled_uncond', negative.pooled);
    const shape = p.latent as Shape4;
    checkAdm(c, models, positive, negative, shape);
    const noise = randnLike(p.seed, shape);
    c.check('noise', noise);
    const latent: Latent = { data: new Float32Array(noise.length), shape };
    const run: RecordedRun = { name: 'sample', sampler: p.sampler, scheduler: p.scheduler, steps: p.steps, cfg: p.cfg, denoise: 1, seed: p.seed };
    // Decode what we sampled, not the expected latent, so the check covers the whole chain.
    const z = await checkRun(c, models, 'sample', run, { latent, positive, negative, noise });
    const vae = await caseVae(c, models);
    c.check('image_raw', (await vae.decodeRaw(z)).data);
    c.check('image', (await vae.decode(z)).data);
  },
};
