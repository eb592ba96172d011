import { randnLike } from '../../sampling/torch-rng.js';
import { ModelSampling } from '../../sampling/model-sampling.js';
import type { Conditioning, Latent, Shape4 } from '../../sampling/types.js';
import { unetEpsModel } from '../../pipeline/eps-model.js';
import { unetPatchFromNode } from '../../pipeline/unet-patch-specs.js';
import type { UnetPatch } from '../../models/unet/patches.js';
import type { ConformanceCase } from '../case.js';
import type { CaseKind } from './types.js';
import { checkRun, type RecordedRun } from './sampling.js';

interface PatchRun {
  name: string;
  nodes: Array<{ class_type: string; inputs: Record<string, unknown> }>;
  ksampler: { seed: number; steps: number; cfg: number; sampler_name: string; scheduler: string };
  sigma_start?: number;
  sigma_end?: number;
}

function cond(c: ConformanceCase, name: string): Conditioning {
  const t = c.input(name);
  return { context: t.data as Float32Array, contextShape: [...t.dims] as [number, number, number] };
}

/** The run's latent: `params.latent`, else the `_HxW` suffix of its name. */
function latentShape(c: ConformanceCase, run: PatchRun, channels: number): Shape4 {
  const m = /_(\d+)x(\d+)$/.exec(run.name);
  if (m) return [1, channels, Number(m[1]), Number(m[2])];
  const p = c.json.params?.latent;
  if (Array.isArray(p) && p.length === 4) return p as Shape4;
  throw new Error(`${c.dir}: run ${run.name} names no latent size`);
}

/**
 * freeu, deep-shrink, hypertile: KSampler runs of the base model through each patch node chain, checking
 * sigmas, per-step x / denoised and samples, plus HyperTile's every random draw and tile choice.
 */
export const modelPatchesKind: CaseKind = {
  name: 'model-patches',
  matches: (c) => ['freeu', 'deep-shrink', 'hypertile'].includes(c.name),
  async run(c, models) {
    const unet = models.unet(c);
    const ms = new ModelSampling();
    const positive = cond(c, 'cond');
    const negative = cond(c, 'uncond');
    for (const run of c.json.runs as PatchRun[]) {
      const shape = latentShape(c, run, unet.config.inChannels);
      const patches: UnetPatch[] = run.nodes.map((n) => {
        const p = unetPatchFromNode(n.class_type, n.inputs, ms);
        if (!p) throw new Error(`run ${run.name}: ${n.class_type} is not a model patch node`);
        return p;
      });
      const shrink = patches.find((p) => p.kind === 'deep-shrink');
      if (shrink && run.sigma_end !== undefined && Math.abs(shrink.sigmaEnd - run.sigma_end) > 1e-5 * run.sigma_end) {
        throw new Error(`run ${run.name}: percent_to_sigma gives ${shrink.sigmaEnd}, ComfyUI ${run.sigma_end}`);
      }
      const k = run.ksampler;
      const values: number[] = [];
      const highs: number[] = [];
      const divisors: number[] = [];
      const model = unetEpsModel(unet, {
        patches,
        seed: k.seed,
        observe: { randint: (v, n) => (values.push(v), highs.push(n)), tileChoice: (d) => divisors.push(d) },
      });
      const recorded: RecordedRun = { name: run.name, sampler: k.sampler_name, scheduler: k.scheduler, steps: k.steps, cfg: k.cfg, denoise: 1, seed: k.seed };
      const latent: Latent = { data: new Float32Array(shape.reduce((a, b) => a * b, 1)), shape };
      await checkRun(c, models, run.name, recorded, { latent, positive, negative, noise: randnLike(k.seed, shape) }, { modelSampling: ms, model });
      const exact = { atol: 0, rtol: 0 };
      if (c.hasExpected(`${run.name}/randint_values`)) c.check(`${run.name}/randint_values`, values, exact);
      if (c.hasExpected(`${run.name}/randint_highs`)) c.check(`${run.name}/randint_highs`, highs, exact);
      if (c.hasExpected(`${run.name}/divisor_results`)) c.check(`${run.name}/divisor_results`, divisors, exact);
    }
  },
};
