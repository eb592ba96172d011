import { ModelSampling, type Prediction } from '../../sampling/model-sampling.js';
import { rescaleCfg } from '../../sampling/rescale-cfg.js';
import { checkKSamplerRun, conditioning, type KSamplerRun } from './ksampler-runs.js';
import type { CaseKind } from './types.js';

interface ModelSamplingRun extends KSamplerRun {
  variant: string;
  sampling: 'eps' | 'v_prediction' | 'lcm' | 'x0' | null;
  zsnr: boolean;
  rescale_cfg_multiplier: number | null;
}

const PREDICTION: Record<string, Prediction> = { eps: 'eps', v_prediction: 'v', lcm: 'lcm', x0: 'x0' };

/** `model-sampling`: ModelSamplingDiscrete (eps / v / lcm / x0, zsnr) and RescaleCFG patches on KSampler runs. */
export const modelSamplingKind: CaseKind = {
  name: 'model-sampling',
  matches: (c) => c.name === 'model-sampling',
  async run(c, models) {
    const io = { positive: conditioning(c, 'cond'), negative: conditioning(c, 'uncond') };
    const checked = new Set<string>();
    for (const run of c.json.params.runs as ModelSamplingRun[]) {
      const ms = new ModelSampling({ prediction: PREDICTION[run.sampling ?? 'eps'], zsnr: run.zsnr });
      const schedName = `${run.variant.split('+')[0]}/model_sampling/sigmas`;
      if (c.hasExpected(schedName) && !checked.has(schedName)) {
        checked.add(schedName);
        c.check(schedName, ms.sigmas);
      }
      const cfgFunction = run.rescale_cfg_multiplier !== null ? rescaleCfg(run.rescale_cfg_multiplier) : undefined;
      await checkKSamplerRun(c, models, { ...run, noise_input: run.noise_input ?? 'noise' }, io, { modelSampling: ms, cfgFunction });
    }
  },
};
