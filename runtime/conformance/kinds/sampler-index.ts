import type { CaseKind } from './types.js';
import { schedulersKind } from './schedulers.js';
import { ksamplerRunsKind } from './ksampler-runs.js';
import { brownianKind } from './brownian.js';
import { modelSamplingKind } from './model-sampling.js';
import { customSamplingKind } from './custom-sampling.js';

/** Case kinds of ../shared/conformance-samplers and the SDE / Brownian cases of ../shared/conformance-next. */
export const SAMPLER_KINDS: CaseKind[] = [schedulersKind, ksamplerRunsKind, brownianKind, modelSamplingKind, customSamplingKind];
