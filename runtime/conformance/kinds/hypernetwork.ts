import { randnLike } from '../../sampling/torch-rng.js';
import { ModelSampling } from '../../sampling/model-sampling.js';
import type { Conditioning, Latent, Shape4 } from '../../sampling/types.js';
import { unetEpsModel } from '../../pipeline/eps-model.js';
import { loadHypernetwork } from '../../models/hypernetwork/hypernetwork.js';
import type { UnetPatch } from '../../models/unet/patches.js';
import type { CaseKind } from './types.js';
import { checkRun, type RecordedRun } from './sampling.js';

interface HnRun {
  name: string;
  nodes: Array<{ class_type: string; inputs: Record<string, unknown> }>;
  ksampler: { seed: number; steps: number; cfg: number; sampler_name: string; scheduler: string };
}

/** hypernetwork: a UNet forward with / without HypernetworkLoader's patch, and KSampler runs. */
export const hypernetworkKind: CaseKind = {
  name: 'hypernetwork',
  matches: (c) => c.name === 'hypernetwork',
  async run(c, models) {
    const unet = models.unet(c);
    const file = c.modelPath(c.json.models.hypernetwork.file);
    const strength = Number(c.json.params.strength);
    const x = c.input('x');
    const ts = c.input('timesteps').data as Float32Array;
    const context = c.input('context');
    c.check('eps_base', (await unet.eps(x, ts, context)).data as Float32Array);
    const hn = loadHypernetwork(file, strength);
    c.check('eps', (await unet.eps(x, ts, context, { patch: { patches: [hn], sigma: 0 } })).data as Float32Array);
    const cond = (name: string): Conditioning => {
      const t = c.input(name);
      return { context: t.data as Float32Array, contextShape: [...t.dims] as [number, number, number] };
    };
    const shape = [...x.dims.slice(0, 1).map(() => 1), ...x.dims.slice(1)] as Shape4;
    const ms = new ModelSampling();
    for (const run of c.json.runs as HnRun[]) {
      const patches: UnetPatch[] = run.nodes.map((n) => {
        if (n.class_type !== 'HypernetworkLoader') throw new Error(`run ${run.name}: unexpected node ${n.class_type}`);
        return loadHypernetwork(file, Number(n.inputs.strength));
      });
      const k = run.ksampler;
      const recorded: RecordedRun = { name: run.name, sampler: k.sampler_name, scheduler: k.scheduler, steps: k.steps, cfg: k.cfg, denoise: 1, seed: k.seed };
      const latent: Latent = { data: new Float32Array(shape.reduce((a, b) => a * b, 1)), shape };
      const model = patches.length ? unetEpsModel(unet, { patches, seed: k.seed }) : unetEpsModel(unet);
      await checkRun(c, models, run.name, recorded, { latent, positive: cond('cond'), negative: cond('uncond'), noise: randnLike(k.seed, shape) }, { modelSampling: ms, model });
    }
  },
};
