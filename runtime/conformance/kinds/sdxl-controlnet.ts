import type { TensorData } from '../../graph/session.js';
import { resizeHint } from '../../image/resize.js';
import { ControlNet } from '../../models/controlnet/controlnet.js';
import { conditioningAdm, sdxlModelSampling, type SdxlConditioning } from '../../models/sdxl/index.js';
import { sdxlEpsModel } from '../../pipeline/sdxl-eps-model.js';
import type { ControlNetApplication, Latent, Shape4 } from '../../sampling/types.js';
import type { ConformanceCase } from '../case.js';
import type { CaseModels } from '../models.js';
import { checkRun, type RecordedRun } from './sampling.js';
import { headOptions, isSdxlCase, sizesFromJson } from './sdxl-common.js';
import type { CaseKind } from './types.js';
import { cInScale, epsToDenoised } from './unet.js';

const loaded = new WeakMap<CaseModels, Map<string, Promise<ControlNet>>>();

/** The case's SDXL ControlNet (diffusers layout here; the loader also takes the original `control_model.` one). */
function caseControlNet(c: ConformanceCase, models: CaseModels): Promise<ControlNet> {
  const m = c.json.models.controlnet;
  const rel = m.file ?? m.files?.diffusers?.file ?? m.files?.ldm?.file;
  if (!rel) throw new Error(`${c.dir}: case.json names no ControlNet file`);
  const path = c.modelPath(rel);
  let byPath = loaded.get(models);
  if (!byPath) loaded.set(models, (byPath = new Map()));
  let p = byPath.get(path);
  if (!p) byPath.set(path, (p = ControlNet.load(path, headOptions(c))));
  return p;
}

/** NHWC [0,1] image → NCHW hint, as ControlNetApply's movedim does. */
function nchw(t: TensorData): { data: Float32Array; shape: Shape4 } {
  const [B, H, W, C] = t.dims as number[];
  const src = t.data as Float32Array;
  const out = new Float32Array(src.length);
  for (let b = 0; b < B!; b++)
    for (let y = 0; y < H!; y++)
      for (let x = 0; x < W!; x++)
        for (let ch = 0; ch < C!; ch++) out[((b * C! + ch) * H! + y) * W! + x] = src[((b * H! + y) * W! + x) * C! + ch]!;
  return { data: out, shape: [B!, C!, H!, W!] };
}

const scaled = (t: TensorData, s: number): TensorData => ({ data: Float32Array.from(t.data as Float32Array, (v) => v * s), dims: t.dims });

/** ControlNet's window test: no residuals when sigma > sigma_start or sigma < sigma_end (strict, on sigma[0]). */
function inWindow(sigma: number, start: number, end: number): boolean {
  return !(sigma > start || sigma < end);
}

/** `controlnet-sdxl-unet`: residuals with y, strength, the window and the controlled SDXL UNet output. */
export const sdxlControlNetUnetKind: CaseKind = {
  name: 'sdxl-controlnet-unet',
  matches: (c) => c.name.startsWith('controlnet-sdxl-unet') && isSdxlCase(c),
  async run(c, models) {
    const p = c.json.params;
    const unet = models.unet(c);
    const cn = await caseControlNet(c, models);
    const ms = sdxlModelSampling();
    const start = ms.percentToSigma(Number(p.start_percent));
    const end = ms.percentToSigma(Number(p.end_percent));
    c.check('window/sigma_start', [start]);
    c.check('window/sigma_end', [end]);
    const image = nchw(c.input('image'));
    for (const run of p.runs as Array<{ name: string }>) {
      const r = run.name;
      const x = c.input(`${r}/x`);
      const sigma = c.input(`${r}/sigma`).data as Float32Array;
      const context = c.input(`${r}/context`);
      const y = c.input(`${r}/y`);
      const ts = Float32Array.from(sigma, (s) => ms.sigmaToTimestep(s));
      c.check(`${r}/timestep`, ts);
      const xin: TensorData = { data: cInScale(x, sigma), dims: x.dims };
      const active = inWindow(sigma[0]!, start, end);
      c.check(`${r}/control_active`, [active ? 1 : 0]);
      const B = x.dims[0]!;
      const hint = resizeHint(image.data, image.shape, x.dims[2]! * 8, x.dims[3]! * 8);
      const tiled = new Float32Array(hint.data.length * B);
      for (let b = 0; b < B; b++) tiled.set(hint.data, b * hint.data.length);
      let eps: TensorData;
      if (active) {
        const res = await cn.residuals(xin, { data: ts, dims: [B] }, context, { data: tiled, dims: [B, ...hint.shape.slice(1)] }, y);
        res.outputs.forEach((o, i) => c.check(`${r}/control_raw/output.${i}`, o.data as Float32Array));
        c.check(`${r}/control_raw/middle.0`, res.middle.data as Float32Array);
        // ComfyUI records the hint encoder once, for the un-broadcast hint (batch 1).
        if (res.hintEmbedding) c.check(`${r}/control_raw/hint_embedding`, (res.hintEmbedding.data as Float32Array).subarray(0, res.hintEmbedding.data.length / B));
        const control = { outputs: res.outputs.map((o) => scaled(o, Number(p.strength))), middle: scaled(res.middle, Number(p.strength)) };
        control.outputs.forEach((o, i) => c.check(`${r}/control/output.${i}`, o.data as Float32Array));
        c.check(`${r}/control/middle.0`, control.middle.data as Float32Array);
        eps = await unet.eps(xin, ts, context, { control, y });
        if (c.hasExpected(`${r}/eps_without_control`)) c.check(`${r}/eps_without_control`, (await unet.eps(xin, ts, context, { y })).data as Float32Array);
      } else {
        eps = await unet.eps(xin, ts, context, { y });
      }
      c.check(`${r}/eps`, eps.data as Float32Array);
      c.check(`${r}/denoised`, epsToDenoised(x, eps.data as Float32Array, sigma));
    }
  },
};

function conditioning(c: ConformanceCase, ctx: string, pooled: string, sizes?: unknown): SdxlConditioning {
  const t = c.input(ctx);
  const pl = c.input(pooled);
  const out: SdxlConditioning = { context: t.data as Float32Array, contextShape: [...t.dims] as [number, number, number], pooled: pl.data as Float32Array, pooledShape: [...pl.dims] as [number, number] };
  if (sizes && typeof sizes === 'object') out.sizes = sizesFromJson(sizes as Record<string, unknown>);
  return out;
}

/**
 * `controlnet-sdxl-samplers`: KSampler with ControlNetApplyAdvanced, a chain of two, and the deprecated
 * ControlNetApply (positive only, copied to the negative at sampling = an Advanced node with window 0-1).
 */
export const sdxlControlNetSamplersKind: CaseKind = {
  name: 'sdxl-controlnet-samplers',
  matches: (c) => c.name.startsWith('controlnet-sdxl-samplers') && isSdxlCase(c),
  async run(c, models) {
    const p = c.json.params;
    const cn = await caseControlNet(c, models);
    const noise = c.input('noise');
    const shape = [...noise.dims] as Shape4;
    const latent: Latent = { data: new Float32Array(noise.data.length), shape };
    const base = { positive: conditioning(c, 'cond', 'pooled_cond', p.pos_sizes), negative: conditioning(c, 'uncond', 'pooled_uncond') };
    const adm = models.unet(c).config.admInChannels ?? undefined;
    c.check('y_cond', conditioningAdm(base.positive, shape, adm));
    c.check('y_uncond', conditioningAdm(base.negative, shape, adm));
    const images = [nchw(c.input('image1')), nchw(c.input('image2'))];
    images.forEach((im, i) => {
      const name = `hint/image${i + 1}_resized`;
      if (c.hasExpected(name)) c.check(name, resizeHint(im.data, im.shape, shape[2] * 8, shape[3] * 8).data);
    });
    const ms = sdxlModelSampling();
    for (const run of p.runs as Array<{ name: string; controlnets: Array<{ node_output: string; strength: number; start_percent: number; end_percent: number }> }>) {
      const controls: ControlNetApplication[] = run.controlnets.map((k, i) => ({
        controlNet: cn,
        hint: images[i]!.data,
        hintShape: images[i]!.shape,
        strength: k.strength,
        startPercent: k.start_percent,
        endPercent: k.end_percent,
      }));
      const positive: SdxlConditioning = { ...base.positive, controls };
      const negative: SdxlConditioning = { ...base.negative, controls };
      const rec: RecordedRun = { name: run.name, sampler: p.sampler, scheduler: p.scheduler, steps: p.steps, cfg: p.cfg, denoise: 1, seed: p.seed };
      await checkRun(c, models, run.name, rec, { latent, positive, negative, noise: noise.data as Float32Array }, {
        modelSampling: ms,
        model: sdxlEpsModel(models.unet(c), positive, negative, shape),
        noiseSampler: () => {
          throw new Error(`${p.sampler} drew sampler noise; the case records none`);
        },
      });
      const sigmas = c.expectedTensor(`${run.name}/sigmas`).data as Float32Array;
      run.controlnets.forEach((k) => {
        const start = ms.percentToSigma(k.start_percent);
        const end = ms.percentToSigma(k.end_percent);
        const flags = Array.from(sigmas.subarray(0, sigmas.length - 1), (s) => (inWindow(s, start, end) ? 1 : 0));
        c.check(`${run.name}/${k.node_output}/control_active`, flags);
      });
    }
  },
};
