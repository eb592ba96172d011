/**
 * Classifier-free guidance around an eps model, following ComfyUI's sampling_function /
 * calc_cond_batch for one positive and one negative conditioning: both halves run as one batch
 * `[uncond, cond]` when they can be concatenated, the model output is turned into `denoised` per half,
 * and `denoised = uncond + (cond - uncond) * cfg`. With cfg == 1 the negative pass is skipped.
 */
import { f32 } from './f32.js';
import type { ModelSampling } from './model-sampling.js';
import {
  InterruptedError,
  SamplingValidationError,
  numel,
  type ActiveControl,
  type CondBatch,
  type Conditioning,
  type ControlNetApplication,
  type Denoiser,
  type EpsModel,
  type Shape4,
} from './types.js';

export interface CfgDenoiserOptions {
  model: EpsModel;
  positive: Conditioning;
  negative: Conditioning;
  cfg: number;
  modelSampling: ModelSampling;
  /** Shape of the latent batch x the denoiser will receive. */
  shape: Shape4;
  /** Checked before every model call (cond and uncond may be two calls). */
  signal?: AbortSignal;
}

/** ComfyUI refuses to pad token lengths by more than this factor and runs the halves separately instead. */
const MAX_TOKEN_REPEAT = 4;

interface PreparedControl {
  app: ControlNetApplication;
  /** Sigma bounds from percent_to_sigma: active while endSigma <= sigma <= startSigma. */
  startSigma: number;
  endSigma: number;
}

interface PreparedSide {
  kind: 'cond' | 'uncond';
  context: Float32Array;
  tokens: number;
  dim: number;
  controls: PreparedControl[];
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** comfy.utils.repeat_to_batch_size on the leading dimension. */
export function repeatToBatch(data: Float32Array, batch: number, target: number): Float32Array {
  if (batch === target) return data;
  const item = data.length / batch;
  const out = new Float32Array(item * target);
  for (let i = 0; i < target; i++) out.set(data.subarray((i % batch) * item, (i % batch + 1) * item), i * item);
  return out;
}

/** Tiles the token axis `times` times ([B, L, D] -> [B, L * times, D]), ComfyUI's `c.repeat(1, n, 1)`. */
export function repeatTokens(context: Float32Array, batch: number, tokens: number, dim: number, times: number): Float32Array {
  if (times === 1) return context;
  const per = tokens * dim;
  const out = new Float32Array(batch * per * times);
  for (let b = 0; b < batch; b++) {
    const src = context.subarray(b * per, (b + 1) * per);
    for (let k = 0; k < times; k++) out.set(src, (b * times + k) * per);
  }
  return out;
}

/**
 * comfy.controlnet.broadcast_image_to, then expanded to the full call batch: the model side always
 * gets one hint per batch item.
 */
export function broadcastHint(hint: Float32Array, hintShape: Shape4, targetBatch: number, chunks: number): { data: Float32Array; shape: Shape4 } {
  const [hb, c, h, w] = hintShape;
  const item = c * h * w;
  let data = hint;
  let batch = hb;
  if (batch !== 1) {
    const perChunk = Math.floor(targetBatch / chunks);
    const kept = Math.min(batch, perChunk);
    const chunk = new Float32Array(perChunk * item);
    for (let i = 0; i < perChunk; i++) chunk.set(hint.subarray((i % kept) * item, (i % kept + 1) * item), i * item);
    data = chunk;
    batch = perChunk;
  }
  return { data: repeatToBatch(data, batch, targetBatch), shape: [targetBatch, c, h, w] };
}

function prepareSide(kind: 'cond' | 'uncond', cond: Conditioning, latentBatch: number, ms: ModelSampling): PreparedSide {
  const [b, tokens, dim] = cond.contextShape;
  if (![b, tokens, dim].every((d) => Number.isInteger(d) && d > 0)) {
    throw new SamplingValidationError(`${kind} context shape [${cond.contextShape.join(', ')}] is invalid`);
  }
  if (cond.context.length !== b * tokens * dim) {
    throw new SamplingValidationError(`${kind} context has ${cond.context.length} values, shape [${cond.contextShape.join(', ')}] needs ${b * tokens * dim}`);
  }
  const controls = (cond.controls ?? []).map((app) => {
    if (app.hint.length !== numel(app.hintShape)) {
      throw new SamplingValidationError(`${kind} ControlNet hint has ${app.hint.length} values, shape [${app.hintShape.join(', ')}] needs ${numel(app.hintShape)}`);
    }
    return { app, startSigma: ms.percentToSigma(app.startPercent ?? 0), endSigma: ms.percentToSigma(app.endPercent ?? 1) };
  });
  const context = b === latentBatch ? cond.context : repeatToBatch(cond.context, b, latentBatch);
  return { kind, context, tokens, dim, controls };
}

/** ControlBase.get_control's window test: outside when sigma > start or sigma < end. */
function activeControls(side: PreparedSide, sigma: number): ControlNetApplication[] {
  const s = f32(sigma);
  return side.controls.filter((c) => !(s > c.startSigma || s < c.endSigma)).map((c) => c.app);
}

function sameControls(a: ControlNetApplication[], b: ControlNetApplication[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((x, i) => {
    const y = b[i]!;
    return (
      x === y ||
      (x.controlNet === y.controlNet &&
        x.hint === y.hint &&
        x.hintShape.every((d, k) => d === y.hintShape[k]) &&
        x.strength === y.strength)
    );
  });
}

export function makeCfgDenoiser(options: CfgDenoiserOptions): Denoiser {
  const { model, cfg, modelSampling: ms, shape } = options;
  if (!Number.isFinite(cfg) || cfg < 0) throw new SamplingValidationError(`cfg must be a finite number >= 0, got ${cfg}`);
  const [batch, ch, height, width] = shape;
  const pos = prepareSide('cond', options.positive, batch, ms);
  const neg = prepareSide('uncond', options.negative, batch, ms);
  if (pos.dim !== neg.dim) {
    throw new SamplingValidationError(`positive and negative contexts differ in width (${pos.dim} vs ${neg.dim})`);
  }
  // math.isclose(cfg, 1.0): with a scale of one the negative prediction cancels out.
  const skipUncond = Math.abs(cfg - 1) <= 1e-9;
  const itemSize = ch * height * width;

  /** One model call over `sides` (in batch order), returning denoised per side. */
  const run = async (x: Float32Array, sigma: number, sides: PreparedSide[], controls: ControlNetApplication[]): Promise<Float32Array[]> => {
    const n = sides.length;
    const tokens = sides.reduce((l, s) => (l * s.tokens) / gcd(l, s.tokens), 1);
    const dim = sides[0]!.dim;
    const context = new Float32Array(n * batch * tokens * dim);
    sides.forEach((s, i) => context.set(repeatTokens(s.context, batch, s.tokens, dim, tokens / s.tokens), i * batch * tokens * dim));
    const xScaled = ms.calculateInput(sigma, x);
    const xIn = new Float32Array(n * xScaled.length);
    for (let i = 0; i < n; i++) xIn.set(xScaled, i * xScaled.length);
    const callShape: Shape4 = [n * batch, ch, height, width];
    const active: ActiveControl[] = controls.map((app) => {
      const hint = broadcastHint(app.hint, app.hintShape, n * batch, n);
      return { controlNet: app.controlNet, hint: hint.data, hintShape: hint.shape, strength: app.strength };
    });
    const cond: CondBatch = {
      context,
      contextShape: [n * batch, tokens, dim],
      controls: active,
      condOrUncond: sides.map((s) => s.kind),
    };
    if (options.signal?.aborted) throw new InterruptedError();
    const out = await model(xIn, callShape, ms.sigmaToTimestep(sigma), cond);
    if (options.signal?.aborted) throw new InterruptedError();
    if (out.length !== xIn.length) {
      throw new SamplingValidationError(`model returned ${out.length} values for an input of shape [${callShape.join(', ')}]`);
    }
    return sides.map((_, i) => ms.calculateDenoised(sigma, out.subarray(i * batch * itemSize, (i + 1) * batch * itemSize), x));
  };

  return async (x, sigma) => {
    const posControls = activeControls(pos, sigma);
    if (skipUncond) return (await run(x, sigma, [pos], posControls))[0]!;
    const negControls = activeControls(neg, sigma);
    const lcmTokens = (pos.tokens * neg.tokens) / gcd(pos.tokens, neg.tokens);
    const batchable = lcmTokens / Math.min(pos.tokens, neg.tokens) <= MAX_TOKEN_REPEAT && sameControls(posControls, negControls);
    let u: Float32Array;
    let c: Float32Array;
    if (batchable) {
      [u, c] = (await run(x, sigma, [neg, pos], posControls)) as [Float32Array, Float32Array];
    } else {
      c = (await run(x, sigma, [pos], posControls))[0]!;
      u = (await run(x, sigma, [neg], negControls))[0]!;
    }
    const out = new Float32Array(x.length);
    for (let i = 0; i < out.length; i++) out[i] = u[i]! + (c[i]! - u[i]!) * cfg;
    return out;
  };
}
