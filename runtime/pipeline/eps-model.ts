import type { TensorData } from '../graph/session.js';
import { ControlNet } from '../models/controlnet/controlnet.js';
import type { UnetModel } from '../models/unet/model.js';
import type { ActiveControl, CondBatch, EpsModel, Shape4 } from '../sampling/types.js';
import { resizeHint } from '../image/resize.js';
import type { UnetPatch } from '../models/unet/patches.js';
import { globalTorchRandint } from '../sampling/global-randint.js';
import { isT2IControl, t2iInputControl } from './t2i-control.js';

export interface EpsModelOptions {
  /** Adapter-patched weights for this model (full checkpoint keys), fed per call: no session rebuild. */
  overrides?: ReadonlyMap<string, Float32Array>;
  /** SDXL: the label-embedding vector per conditioning batch item, built by the caller. */
  y?: (cond: CondBatch) => TensorData | undefined;
  /** UNet forward patches (FreeU, Deep Shrink, HyperTile), run at every call with the step's sigma. */
  patches?: readonly UnetPatch[];
  /**
   * The seed the sampler's prepare_noise used: HyperTile draws its tiles from torch's global generator right
   * after that noise, so its choices follow from the seed and the latent size.
   */
  seed?: number | bigint;
  /** numel of the sampled latent (what prepare_noise drew); default: the first call's chunk (wrong under area crops). */
  latentNumel?: number;
  /** Observes HyperTile's draws (value, exclusive high) and tile choices; for diagnostics and conformance. */
  observe?: { randint?: (value: number, high: number) => void; tileChoice?: (divisor: number) => void };
}

function tile(data: Float32Array, shape: Shape4, batch: number): { data: Float32Array; shape: Shape4 } {
  if (shape[0] === batch) return { data, shape };
  if (shape[0] !== 1) throw new Error(`ControlNet hint batch ${shape[0]} does not match latent batch ${batch}`);
  const out = new Float32Array(data.length * batch);
  for (let b = 0; b < batch; b++) out.set(data, b * data.length);
  return { data: out, shape: [batch, shape[1], shape[2], shape[3]] };
}

/** Sums the strength-scaled residuals of every active ControlNet (chained ControlNets add up, as in ComfyUI). */
async function controlResiduals(controls: ActiveControl[], x: TensorData, t: TensorData, context: TensorData): Promise<{ outputs: TensorData[]; middle: TensorData } | undefined> {
  let acc: { outputs: Float32Array[]; middle: Float32Array; dims: { outputs: readonly number[][]; middle: readonly number[] } } | undefined;
  const [B, , h, w] = x.dims as number[];
  for (const c of controls) {
    if (!(c.controlNet instanceof ControlNet)) throw new Error('unsupported ControlNet model object');
    const sized = resizeHint(c.hint, c.hintShape, h! * 8, w! * 8);
    const hint = tile(sized.data, sized.shape, B!);
    const r = await c.controlNet.residuals(x, t, context, { data: hint.data, dims: hint.shape });
    const scale = (a: Float32Array, into?: Float32Array) => {
      const o = into ?? new Float32Array(a.length);
      for (let i = 0; i < a.length; i++) o[i] = o[i]! + a[i]! * c.strength;
      return o;
    };
    if (!acc) {
      acc = {
        outputs: r.outputs.map((o) => scale(o.data as Float32Array)),
        middle: scale(r.middle.data as Float32Array),
        dims: { outputs: r.outputs.map((o) => [...o.dims]), middle: [...r.middle.dims] },
      };
    } else {
      r.outputs.forEach((o, i) => scale(o.data as Float32Array, acc!.outputs[i]));
      scale(r.middle.data as Float32Array, acc.middle);
    }
  }
  if (!acc) return undefined;
  return { outputs: acc.outputs.map((d, i) => ({ data: d, dims: acc!.dims.outputs[i]! })), middle: { data: acc.middle, dims: acc.dims.middle } };
}

/** Inpainting UNets take extra input channels after x (ComfyUI's c_concat). */
function withConcat(xIn: Float32Array, shape: Shape4, extra: Float32Array, k: number): TensorData {
  const [B, C, h, w] = shape;
  const plane = h * w;
  const out = new Float32Array(B * (C + k) * plane);
  for (let b = 0; b < B; b++) {
    out.set(xIn.subarray(b * C * plane, (b + 1) * C * plane), b * (C + k) * plane);
    out.set(extra.subarray(b * k * plane, (b + 1) * k * plane), (b * (C + k) + C) * plane);
  }
  return { data: out, dims: [B, C + k, h, w] };
}

/** Adapts a loaded UNet (+ ControlNets) to the sampler's EpsModel contract. */
export function unetEpsModel(unet: UnetModel, opts: EpsModelOptions = {}): EpsModel {
  let randint: ((n: number) => number) | undefined;
  return async (xIn, shape, timestep, cond) => {
    const x: TensorData = cond.concat ? withConcat(xIn, shape, cond.concat.data, cond.concat.shape[1]) : { data: xIn, dims: shape };
    const ts = new Float32Array(shape[0]).fill(timestep);
    const context: TensorData = { data: cond.context, dims: cond.contextShape };
    const cnets = cond.controls.filter((c) => !isT2IControl(c));
    const adapters = cond.controls.filter(isT2IControl);
    const control = cnets.length ? await controlResiduals(cnets, x, { data: ts, dims: [ts.length] }, context) : undefined;
    const callOpts: Parameters<UnetModel['eps']>[3] = {};
    if (control) callOpts.control = control;
    if (adapters.length) {
      const inputControl = await t2iInputControl(adapters, shape, unet.config);
      if (inputControl.size) callOpts.inputControl = inputControl;
    }
    if (opts.overrides) callOpts.overrides = opts.overrides;
    const y = opts.y?.(cond);
    if (y) callOpts.y = y;
    if (opts.patches?.length) {
      if (cond.sigma === undefined) throw new Error('UNet patches need the step sigma, which this sampler did not pass');
      const latentNumel = opts.latentNumel ?? (shape[0] / Math.max(1, cond.condOrUncond.length)) * shape[1] * shape[2] * shape[3];
      if (opts.patches.some((p) => p.kind === 'hypertile') && !randint) {
        const draw = globalTorchRandint(opts.seed ?? 0, latentNumel);
        const seen = opts.observe?.randint;
        randint = seen ? (n) => { const v = draw(n); seen(v, n); return v; } : draw;
      }
      callOpts.patch = { patches: opts.patches, sigma: cond.sigma, ...(randint ? { randint } : {}), ...(opts.observe?.tileChoice ? { onTileChoice: opts.observe.tileChoice } : {}) };
    }
    const eps = await unet.eps(x, ts, context, callOpts);
    return eps.data as Float32Array;
  };
}
