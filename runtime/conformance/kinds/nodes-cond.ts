import { resizeNCHW } from '../../image/resize.js';
import { unetEpsModel } from '../../pipeline/eps-model.js';
import { averageConds, combineConds, concatConds, setAreaCells, setAreaFraction, setMask, setStrength, setTimestepRange, zeroOutConds, type PooledConditioning } from '../../sampling/cond-ops.js';
import { ModelSampling } from '../../sampling/model-sampling.js';
import { sample, type SampleOptions } from '../../sampling/sample.js';
import { scheduleSigmas } from '../../sampling/schedulers.js';
import { randnLike } from '../../sampling/torch-rng.js';
import type { EpsModel, Latent, MaskTensor, Shape4 } from '../../sampling/types.js';
import type { ConformanceCase } from '../case.js';
import type { CaseModels } from '../models.js';
import { stack } from './sampling.js';
import type { CaseKind } from './types.js';

/** A node of a case's recorded chain (API-prompt style: "@name" = case input, "<label>" = earlier output). */
export interface ChainNode {
  class_type: string;
  inputs: Record<string, unknown>;
}

export interface KSamplerParams {
  seed: number;
  steps: number;
  cfg: number;
  sampler_name: string;
  scheduler: string;
  denoise?: number;
}

export function caseCond(c: ConformanceCase, name: string): PooledConditioning {
  const t = c.input(name);
  const out: PooledConditioning = { context: t.data as Float32Array, contextShape: [...t.dims] as [number, number, number] };
  const pooledName = name.startsWith('cond_') ? `pooled_${name.slice(5)}` : `pooled_${name}`;
  if (c.hasInput(pooledName)) out.pooled = c.input(pooledName).data as Float32Array;
  return out;
}

function caseMask(c: ConformanceCase, name: string): MaskTensor {
  const t = c.input(name);
  const d = t.dims;
  const shape: [number, number, number] = d.length === 2 ? [1, d[0]!, d[1]!] : [d[0]!, d[1]!, d[2]!];
  return { data: t.data as Float32Array, shape };
}

/** Evaluates a chain of conditioning nodes; returns each node's output in order. */
export function evalCondChain(c: ConformanceCase, nodes: ChainNode[]): PooledConditioning[] {
  const outs: PooledConditioning[] = [];
  const used = new Set<number>();
  const ref = (v: unknown): PooledConditioning => {
    const s = String(v);
    if (s.startsWith('@')) return caseCond(c, s.slice(1));
    const label = s.replace(/^<|>$/g, '');
    let idx = -1;
    for (let i = outs.length - 1; i >= 0; i--) if (nodes[i]!.class_type === label) (idx = i), (i = -1);
    if (idx < 0) idx = outs.findIndex((_, i) => !used.has(i));
    if (idx < 0) throw new Error(`chain reference ${s} names no earlier node`);
    used.add(idx);
    return outs[idx]!;
  };
  for (const n of nodes) {
    const i = n.inputs;
    const num = (k: string) => Number(i[k]);
    let out: PooledConditioning;
    switch (n.class_type) {
      case 'ConditioningCombine':
        out = combineConds(ref(i.conditioning_1), ref(i.conditioning_2));
        break;
      case 'ConditioningConcat':
        out = concatConds(ref(i.conditioning_to), ref(i.conditioning_from));
        break;
      case 'ConditioningAverage':
        out = averageConds(ref(i.conditioning_to), ref(i.conditioning_from), num('conditioning_to_strength'));
        break;
      case 'ConditioningZeroOut':
        out = zeroOutConds(ref(i.conditioning));
        break;
      case 'ConditioningSetArea':
        out = setAreaCells(ref(i.conditioning), num('width'), num('height'), num('x'), num('y'), num('strength'));
        break;
      case 'ConditioningSetAreaPercentage':
        out = setAreaFraction(ref(i.conditioning), num('width'), num('height'), num('x'), num('y'), num('strength'));
        break;
      case 'ConditioningSetAreaStrength':
        out = setStrength(ref(i.conditioning), num('strength'));
        break;
      case 'ConditioningSetMask':
        out = setMask(ref(i.conditioning), caseMask(c, String(i.mask).slice(1)), i.set_cond_area === 'mask bounds', num('strength'));
        break;
      case 'ConditioningSetTimestepRange':
        out = setTimestepRange(ref(i.conditioning), num('start'), num('end'));
        break;
      default:
        throw new Error(`chain node ${n.class_type} is not a conditioning node this kind evaluates`);
    }
    outs.push(out);
  }
  return outs;
}

export interface RunIo {
  latent: Latent;
  positive: PooledConditioning;
  negative: PooledConditioning;
  model?: EpsModel;
  extra?: Partial<SampleOptions>;
}

/** One KSampler run with every recorded per-step tensor checked under `prefix/`. */
export async function checkKSampler(c: ConformanceCase, models: CaseModels, prefix: string, k: KSamplerParams, io: RunIo): Promise<Latent> {
  const ms = new ModelSampling();
  const denoise = k.denoise ?? 1;
  const shape = io.latent.shape;
  if (c.hasExpected(`${prefix}/sigmas`)) c.check(`${prefix}/sigmas`, scheduleSigmas(ms, k.scheduler, k.steps, { denoise, sampler: k.sampler_name }));
  const xs: Float32Array[] = [];
  const ds: Float32Array[] = [];
  const cp: Float32Array[] = [];
  const up: Float32Array[] = [];
  const out = await sample({
    model: io.model ?? unetEpsModel(models.unet(c)),
    modelSampling: ms,
    sampler: k.sampler_name,
    scheduler: k.scheduler,
    steps: k.steps,
    cfg: k.cfg,
    denoise,
    seed: k.seed,
    latent: io.latent,
    positive: io.positive,
    negative: io.negative,
    noise: randnLike(k.seed, shape),
    onStep: (p) => {
      xs.push(Float32Array.from(p.x));
      ds.push(Float32Array.from(p.denoised));
    },
    onPredictions: (cond, uncond) => {
      cp.push(Float32Array.from(cond));
      up.push(Float32Array.from(uncond));
    },
    ...io.extra,
  });
  const opt = (name: string, v: Float32Array[]) => {
    if (c.hasExpected(`${prefix}/${name}`)) c.check(`${prefix}/${name}`, stack(v));
  };
  opt('step_x', xs);
  opt('step_denoised', ds);
  opt('step_cond_pred', cp);
  opt('step_uncond_pred', up);
  c.check(`${prefix}/samples`, out.data);
  return out;
}

interface CondRun {
  name: string;
  nodes: ChainNode[];
  ksampler: KSamplerParams;
}

/** conditioning-area / -mask / -ops: conditioning node chains sampled with KSampler. */
export const conditioningKind: CaseKind = {
  name: 'nodes-conditioning',
  matches: (c) => ['conditioning-area', 'conditioning-mask', 'conditioning-ops'].includes(c.name),
  async run(c, models) {
    const shape = c.json.params.latent as Shape4;
    const ms = new ModelSampling();
    for (const [p, sigma] of Object.entries((c.json.params.percent_to_sigma ?? {}) as Record<string, number>)) {
      const ours = ms.percentToSigma(Number(p));
      if (Math.abs(ours - sigma) > 1e-6 * Math.max(1, Math.abs(sigma))) throw new Error(`percent_to_sigma(${p}) = ${ours}, expected ${sigma}`);
    }
    for (const run of c.json.runs as CondRun[]) {
      const maskNode = run.nodes.find((n) => n.class_type === 'ConditioningSetMask');
      if (maskNode && c.hasExpected(`${run.name}/resolved_mask`)) {
        const m = caseMask(c, String(maskNode.inputs.mask).slice(1));
        c.check(`${run.name}/resolved_mask`, resizeNCHW(m.data, [m.shape[0], 1, m.shape[1], m.shape[2]], shape[2], shape[3], 'bilinear', false).data);
      }
      const outs = evalCondChain(c, run.nodes);
      let positive = caseCond(c, 'cond_A');
      let negative = caseCond(c, 'uncond');
      const last = outs[outs.length - 1];
      if (last) {
        if (String(run.nodes[0]!.inputs.conditioning) === '@uncond') negative = last;
        else positive = last;
      }
      if (c.hasExpected(`${run.name}/cond`)) c.check(`${run.name}/cond`, last!.context);
      if (c.hasExpected(`${run.name}/pooled`)) c.check(`${run.name}/pooled`, last!.pooled ?? new Float32Array(0));
      const latent: Latent = { data: new Float32Array(shape.reduce((a, b) => a * b, 1)), shape };
      await checkKSampler(c, models, run.name, run.ksampler, { latent, positive, negative });
    }
  },
};
