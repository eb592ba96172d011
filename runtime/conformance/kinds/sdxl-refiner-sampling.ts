import { fixedAdmProvider, refinerAdm, resolveRefinerAdm, type PromptRole } from '../../models/families/sdxl-refiner/index.js';
import { sdxlModelSampling } from '../../models/sdxl/sampling.js';
import { unetEpsModel } from '../../pipeline/eps-model.js';
import type { Conditioning, Latent, Shape4 } from '../../sampling/types.js';
import type { ConformanceCase } from '../case.js';
import type { CaseModels } from '../models.js';
import { checkRun, type RecordedRun } from './sampling.js';
import { caseTokenizer, encodeRefinerText, isRefinerCase, refinerParts, refinerValuesFromJson } from './sdxl-refiner.js';
import type { CaseKind } from './types.js';

interface RefinerCond extends Conditioning {
  y: Float32Array;
}

/** CLIPTextEncodeSDXLRefiner / CLIPTextEncode on the refiner: bigG context and the y it will get for `latent`. */
async function refinerConditioning(c: ConformanceCase, models: CaseModels, text: string, args: Record<string, unknown> | undefined, role: PromptRole, latent: readonly number[]): Promise<RefinerCond> {
  const parts = refinerParts(c, models);
  const enc = await encodeRefinerText(text, caseTokenizer(c), await parts.clipG);
  const values = resolveRefinerAdm(refinerValuesFromJson(args), role, latent);
  return { context: enc.cond, contextShape: enc.condDims as [number, number, number], y: refinerAdm(enc.pooled, enc.pooled.length, values, parts.unet.config.admInChannels ?? undefined) };
}

/** `refiner-samplers`: KSampler on the refiner from text, txt2img and img2img (denoise < 1). */
export const refinerSamplersKind: CaseKind = {
  name: 'sdxl-refiner-samplers',
  matches: (c) => isRefinerCase(c) && c.name.startsWith('refiner-samplers'),
  async run(c, models) {
    const p = c.json.params;
    const { unet } = refinerParts(c, models);
    const adm = unet.config.admInChannels!;
    const conds = new Map<string, RefinerCond>();
    const runs = p.runs as RecordedRun[];
    const firstNoise = c.input(`${runs[0]!.name}/noise`);
    for (const [, , textKey, args, role] of p.conditioning as Array<[string, string, string, Record<string, unknown>, PromptRole]>) {
      conds.set(role, await refinerConditioning(c, models, String(p.texts[textKey]), args, role, firstNoise.dims));
    }
    const positive = conds.get('positive')!;
    const negative = conds.get('negative')!;
    c.check('cond', positive.context);
    c.check('uncond', negative.context);
    c.check('y_cond', positive.y);
    c.check('y_uncond', negative.y);
    for (const run of runs) {
      const noise = c.input(`${run.name}/noise`);
      const shape = [...noise.dims] as Shape4;
      const latent: Latent = c.hasInput(`${run.name}/latent_image`)
        ? { data: c.input(`${run.name}/latent_image`).data as Float32Array, shape }
        : { data: new Float32Array(noise.data.length), shape };
      await checkRun(c, models, run.name, { ...run, denoise: run.denoise ?? 1 }, { latent, positive, negative, noise: noise.data as Float32Array }, {
        modelSampling: sdxlModelSampling(),
        model: unetEpsModel(unet, { y: fixedAdmProvider({ cond: positive.y, uncond: negative.y }, adm) }),
        noiseSampler: () => {
          throw new Error(`${run.sampler} drew sampler noise; the case records none`);
        },
      });
    }
  },
};
