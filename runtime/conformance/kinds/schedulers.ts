import { ModelSampling } from '../../sampling/model-sampling.js';
import { betaScheduler, calculateSigmas, exponentialSigmas, karrasSigmas, scheduleSigmas } from '../../sampling/schedulers.js';
import { basicSchedulerSigmas, laplaceSigmas, polyexponentialSigmas, sdTurboSigmas, splitSigmasDenoise, vpSigmas } from '../../sampling/sigma-ops.js';
import { compareTensor } from '../case.js';
import type { CaseKind } from './types.js';

interface Entry {
  name: string;
  scheduler?: string;
  node?: string;
  steps: number;
  denoise?: number;
  [k: string]: unknown;
}

/** The scheduler node of a `nodes/<Node>` entry, with the widget values recorded in the entry. */
function nodeSigmas(ms: ModelSampling, e: Entry): Float32Array {
  const n = (k: string) => Number(e[k]);
  switch (e.node) {
    case 'KarrasScheduler':
      return karrasSigmas(e.steps, n('sigma_min'), n('sigma_max'), n('rho'));
    case 'ExponentialScheduler':
      return exponentialSigmas(e.steps, n('sigma_min'), n('sigma_max'));
    case 'PolyexponentialScheduler':
      return polyexponentialSigmas(e.steps, n('sigma_min'), n('sigma_max'), n('rho'));
    case 'LaplaceScheduler':
      return laplaceSigmas(e.steps, n('sigma_min'), n('sigma_max'), n('mu'), n('beta'));
    case 'VPScheduler':
      return vpSigmas(e.steps, n('beta_d'), n('beta_min'), n('eps_s'));
    case 'BetaSamplingScheduler':
      return betaScheduler(ms, e.steps, n('alpha'), n('beta'));
    case 'SDTurboScheduler':
      return sdTurboSigmas(ms, e.steps, e.denoise ?? 1);
    default:
      throw new Error(`schedulers case: unknown scheduler node "${e.node}"`);
  }
}

/** `schedulers`: sigmas of every KSampler scheduler, BasicScheduler, and the scheduler nodes (no UNet). */
export const schedulersKind: CaseKind = {
  name: 'schedulers',
  matches: (c) => c.name === 'schedulers',
  async run(c) {
    const ms = new ModelSampling();
    if (c.hasExpected('model_sampling/sigmas')) {
      c.check('model_sampling/sigmas', ms.sigmas);
      c.check('model_sampling/log_sigmas', ms.logSigmas);
    }
    for (const e of (c.json.params?.entries ?? []) as Entry[]) {
      if (e.node) {
        c.check(`${e.name}/sigmas`, nodeSigmas(ms, e));
        continue;
      }
      const denoise = e.denoise ?? 1;
      const name = `${e.name}/sigmas`;
      if (c.hasExpected(name)) c.check(name, scheduleSigmas(ms, e.scheduler!, e.steps, { denoise }));
      const discard = `${e.name}/sigmas_discard_penultimate`;
      if (c.hasExpected(discard)) c.check(discard, scheduleSigmas(ms, e.scheduler!, e.steps, { denoise, sampler: 'dpm_2' }));
      const basic = basicSchedulerSigmas(ms, e.scheduler!, e.steps, denoise);
      const basicName = `${e.name}/sigmas_basic_scheduler`;
      if (c.hasExpected(basicName)) c.check(basicName, basic);
      else if (c.hasExpected(name) && e.basic_scheduler_equals_ksampler) {
        c.results.push(compareTensor(`${name} (BasicScheduler)`, basic, c.expected.readFloat32(name), c.tolerance(name)));
      }
    }
    // SplitSigmasDenoise entries are described by their tensor names and descriptions.
    for (const key of c.expected.keys()) {
      const m = /^nodes\/SplitSigmasDenoise\/denoise([\d.]+)\/high_sigmas$/.exec(key);
      if (!m) continue;
      const desc = String(c.json.outputs?.tensors?.[key]?.desc ?? '');
      const d = /SplitSigmasDenoise\((\w+) (\d+) steps/.exec(desc);
      if (!d) throw new Error(`schedulers case: cannot read the schedule of ${key} from "${desc}"`);
      const [high, low] = splitSigmasDenoise(calculateSigmas(ms, d[1]!, Number(d[2])), Number(m[1]));
      c.check(key, high);
      c.check(key.replace(/high_sigmas$/, 'low_sigmas'), low);
    }
  },
};
