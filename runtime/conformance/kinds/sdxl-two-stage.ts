import { fixedAdmProvider, refinerAdm, resolveRefinerAdm, type PromptRole, type RefinerAdmValues } from '../../models/families/sdxl-refiner/index.js';
import { conditioningAdm, tokenizeSdxl, type SdxlConditioning, type SdxlSizes } from '../../models/sdxl/index.js';
import { sdxlModelSampling } from '../../models/sdxl/sampling.js';
import { Vae } from '../../models/vae/index.js';
import { unetEpsModel } from '../../pipeline/eps-model.js';
import { sdxlEpsModel } from '../../pipeline/sdxl-eps-model.js';
import { applyStepWindow, sample } from '../../sampling/sample.js';
import { scheduleSigmas } from '../../sampling/schedulers.js';
import { randnLike } from '../../sampling/torch-rng.js';
import type { EpsModel, Latent, Shape4 } from '../../sampling/types.js';
import type { ConformanceCase } from '../case.js';
import type { CaseModels } from '../models.js';
import { caseTextEncoder, sizesFromJson } from './sdxl-common.js';
import { caseTokenizer, encodeRefinerText, refinerParts, refinerValuesFromJson } from './sdxl-refiner.js';
import type { CaseKind } from './types.js';

interface Stage {
  add_noise: 'enable' | 'disable';
  start_at_step: number;
  end_at_step: number;
  return_with_leftover_noise: 'enable' | 'disable';
}

/** `CLIPTextEncodeSDXL {'width': 1024, ...}` → the node and its widget values (the case's spelling). */
function nodeSpec(s: string): { node: string; args: Record<string, unknown> } {
  const i = s.indexOf('{');
  if (i < 0) return { node: s.trim(), args: {} };
  return { node: s.slice(0, i).trim(), args: JSON.parse(s.slice(i).replace(/'/g, '"')) as Record<string, unknown> };
}

async function runStage(
  c: ConformanceCase,
  prefix: string,
  run: { sampler: string; scheduler: string; steps: number; cfg: number; seed: number },
  stage: Stage,
  model: EpsModel,
  io: { latent: Latent; positive: SdxlConditioning | { context: Float32Array; contextShape: [number, number, number] }; negative: typeof io.positive; noise: Float32Array },
): Promise<Latent> {
  const ms = sdxlModelSampling();
  const window = { startStep: stage.start_at_step, endStep: stage.end_at_step, returnWithLeftoverNoise: stage.return_with_leftover_noise === 'enable' };
  const sigmas = applyStepWindow(scheduleSigmas(ms, run.scheduler, run.steps, { denoise: 1, sampler: run.sampler }), window.startStep, window.endStep, !window.returnWithLeftoverNoise);
  if (sigmas) c.check(`${prefix}/sigmas`, sigmas);
  const xs: Float32Array[] = [];
  const ds: Float32Array[] = [];
  const out = await sample({
    model,
    modelSampling: ms,
    sampler: run.sampler,
    scheduler: run.scheduler,
    steps: run.steps,
    cfg: run.cfg,
    seed: run.seed,
    latent: io.latent,
    positive: io.positive,
    negative: io.negative,
    noise: io.noise,
    addNoise: stage.add_noise === 'enable',
    ...window,
    noiseSampler: () => {
      throw new Error(`${run.sampler} drew sampler noise; the case records none`);
    },
    onStep: (p) => {
      xs.push(Float32Array.from(p.x));
      ds.push(Float32Array.from(p.denoised));
    },
  });
  const stack = (a: Float32Array[]) => {
    const o = new Float32Array(a.reduce((n, x) => n + x.length, 0));
    a.forEach((x, i) => o.set(x, i * x.length));
    return o;
  };
  c.check(`${prefix}/step_x`, stack(xs));
  c.check(`${prefix}/step_denoised`, stack(ds));
  c.check(`${prefix}/samples`, out.data);
  return out;
}

/**
 * `refiner-two-stage`: ComfyUI's SDXL refiner example. Base KSamplerAdvanced (noise on, steps 0→4, leftover
 * noise kept) hands its latent to the refiner's KSamplerAdvanced (no noise, steps 4→end); each stage
 * conditions on its own text encoders and y layout; VAEDecode with the refiner's VAE.
 */
export const refinerTwoStageKind: CaseKind = {
  name: 'sdxl-refiner-two-stage',
  matches: (c) => c.name.startsWith('refiner-two-stage') && Boolean(c.json.models?.refiner?.file) && Boolean(c.json.models?.checkpoint?.file),
  async run(c, models) {
    const p = c.json.params;
    const tok = caseTokenizer(c);
    const baseText = await caseTextEncoder(c, models);
    const refiner = refinerParts(c, models);
    const clipG = await refiner.clipG;
    // EmptyLatentImage's shape is the recorded noise's (prepare_noise draws one value per latent element).
    const shape = [...c.expectedTensor('noise').dims] as Shape4;
    const noise = randnLike(p.runs[0].seed, shape);
    c.check('noise', noise);
    const texts: Record<'pos' | 'neg', string> = { pos: String(p.texts.positive), neg: String(p.texts.negative) };
    for (const side of ['pos', 'neg'] as const) {
      const t = tokenizeSdxl(tok, texts[side]);
      c.check(`tokens/${side}_l`, t.l.tokens.flat());
      c.check(`tokens/${side}_g`, t.g.tokens.flat());
    }
    const baseUnet = models.unet(c);
    const vae = await Vae.load(refiner.checkpoint.file, { prefix: 'first_stage_model.', scaleFactor: refiner.checkpoint.vaeScaleFactor });
    for (const run of p.runs as Array<Record<string, any>>) {
      const name = String(run.name);
      const checkIf = (k: string, v: ArrayLike<number>) => (c.hasExpected(k) ? c.check(k, v) : undefined);
      const base = async (side: 'pos' | 'neg', spec: string): Promise<SdxlConditioning> => {
        const { node, args } = nodeSpec(spec);
        const r = await baseText.encodeTokens(tokenizeSdxl(tok, texts[side]));
        const cond: SdxlConditioning = { context: r.context, contextShape: r.contextShape, pooled: r.pooled, pooledShape: r.pooledShape };
        if (node === 'CLIPTextEncodeSDXL') cond.sizes = sizesFromJson(args) as Partial<SdxlSizes>;
        checkIf(`${name}/base_${side}/cond`, cond.context);
        checkIf(`${name}/base_${side}/pooled`, cond.pooled);
        checkIf(`${name}/base_${side}/y`, conditioningAdm(cond, shape, baseUnet.config.admInChannels ?? undefined));
        return cond;
      };
      const ref = async (side: 'pos' | 'neg', spec: string, role: PromptRole) => {
        const { node, args } = nodeSpec(spec);
        const enc = await encodeRefinerText(texts[side], tok, clipG);
        const given: Partial<RefinerAdmValues> = node === 'CLIPTextEncodeSDXLRefiner' ? refinerValuesFromJson(args) : {};
        const y = refinerAdm(enc.pooled, enc.pooled.length, resolveRefinerAdm(given, role, shape), refiner.unet.config.admInChannels ?? undefined);
        checkIf(`${name}/refiner_${side}/cond`, enc.cond);
        checkIf(`${name}/refiner_${side}/pooled`, enc.pooled);
        checkIf(`${name}/refiner_${side}/y`, y);
        return { context: enc.cond, contextShape: enc.condDims as [number, number, number], y };
      };
      const bp = await base('pos', run.nodes.base_positive);
      const bn = await base('neg', run.nodes.base_negative);
      const rp = await ref('pos', run.nodes.refiner_positive, 'positive');
      const rn = await ref('neg', run.nodes.refiner_negative, 'negative');
      const empty: Latent = { data: new Float32Array(noise.length), shape };
      const common = { sampler: run.sampler, scheduler: run.scheduler, steps: run.steps, cfg: run.cfg, seed: run.seed };
      const stage1 = await runStage(c, `${name}/stage1`, common, run.base, sdxlEpsModel(baseUnet, bp, bn, shape), { latent: empty, positive: bp, negative: bn, noise });
      const refinerModel = unetEpsModel(refiner.unet, { y: fixedAdmProvider({ cond: rp.y, uncond: rn.y }, refiner.unet.config.admInChannels!) });
      const stage2 = await runStage(c, `${name}/stage2`, common, run.refiner, refinerModel, { latent: stage1, positive: rp, negative: rn, noise: new Float32Array(noise.length) });
      c.check(`${name}/image`, (await vae.decode(stage2)).data);
    }
  },
};
