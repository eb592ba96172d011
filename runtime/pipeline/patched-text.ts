import type { LoraPatch } from '../adapters/lora-format.js';
import type { TensorData } from '../graph/session.js';
import type { OpenClipEncodeOptions, OpenClipEncoding, OpenClipTextEncoder } from '../models/openclip/index.js';
import type { SdxlPromptTokens, SdxlTextConditioning, SdxlTextEncoder } from '../models/sdxl/conditioning.js';
import { vectorOptions } from '../models/sdxl/conditioning.js';
import type { WeightSet } from '../models/weights.js';
import { sharedProductCache, type LoraProductCache } from './adapter-merge.js';
import { PatchedClip, PatchedHandle, type AppliedAdapter, type Component } from './patched-model.js';

/** An OpenCLIP text encoder (SDXL's bigG, the refiner's only encoder) with adapters merged per run. */
export class PatchedOpenClip extends PatchedHandle<PatchedOpenClip> {
  private constructor(
    readonly base: OpenClipTextEncoder,
    adapters: readonly AppliedAdapter[],
    cache: LoraProductCache,
  ) {
    super(adapters, cache);
  }

  static of(base: OpenClipTextEncoder, cache: LoraProductCache = sharedProductCache): PatchedOpenClip {
    return new PatchedOpenClip(base, [], cache);
  }

  protected get weights(): WeightSet {
    return this.base.weights;
  }
  protected make(adapters: readonly AppliedAdapter[]): PatchedOpenClip {
    return new PatchedOpenClip(this.base, adapters, this.cache);
  }
  protected component(): Component {
    return 'clip';
  }
  protected patchable(key: string): boolean {
    return this.base.isPatchable(key);
  }
  protected widen(keys: string[]): void {
    this.base.addOverridable(keys);
  }

  private options(extra: OpenClipEncodeOptions = {}): OpenClipEncodeOptions {
    const mine = this.overrides();
    return mine ? { ...extra, overrides: extra.overrides ? new Map([...mine, ...extra.overrides]) : mine } : extra;
  }

  encodeTokens(tokens: number[][], weights?: number[][], opts: OpenClipEncodeOptions = {}): Promise<OpenClipEncoding> {
    return this.base.encodeTokens(tokens, weights, this.options(opts));
  }

  run(windows: number[][], opts: OpenClipEncodeOptions & { debug?: boolean } = {}): Promise<Record<string, TensorData>> {
    return this.base.run(windows, this.options(opts));
  }
}

/**
 * Text-encoder LoRA patches split by the encoder they target, by checkpoint key prefix: the family's encoders
 * each own one prefix (SDXL: CLIP-L te1 + bigG te2; refiner: bigG only), so patches go where their key lives.
 */
export function splitTextPatches(patches: readonly LoraPatch[], prefixes: readonly string[]): LoraPatch[][] {
  const out = prefixes.map((): LoraPatch[] => []);
  for (const p of patches) {
    const i = prefixes.findIndex((pre) => p.target.startsWith(pre));
    if (i < 0) throw new Error(`${p.source}: targets ${p.target}, which none of this model's text encoders holds`);
    out[i]!.push(p);
  }
  return out;
}

/** SDXL's two text encoders as patchable handles (the CLIP value of an SDXL checkpoint). */
export interface PatchedSdxlText {
  base: SdxlTextEncoder;
  clipL: PatchedClip;
  clipG: PatchedOpenClip;
}

export function patchedSdxlText(base: SdxlTextEncoder): PatchedSdxlText {
  return { base, clipL: PatchedClip.of(base.clipL, 2), clipG: PatchedOpenClip.of(base.clipG) };
}

/** Applies a LoRA's text-encoder patches to both SDXL encoders at one strength. */
export function withSdxlTextLora(t: PatchedSdxlText, patches: readonly LoraPatch[], strength: number, id: string, label = id): PatchedSdxlText {
  const [l, g] = splitTextPatches(patches, [t.base.clipL.weights.prefix, t.base.clipG.weights.prefix]);
  return {
    base: t.base,
    clipL: l!.length ? t.clipL.withAdapter({ id, label, patches: l!, strength }) : t.clipL,
    clipG: g!.length ? t.clipG.withAdapter({ id, label, patches: g!, strength }) : t.clipG,
  };
}

/** Joins [S, Dl] and [S, Dg] rows along features, cut to the shorter sequence (SDXLClipModel's cut_to). */
export function concatTextFeatures(l: Float32Array, Dl: number, g: Float32Array, Dg: number): { data: Float32Array; tokens: number } {
  const S = Math.min(l.length / Dl, g.length / Dg);
  const out = new Float32Array(S * (Dl + Dg));
  for (let t = 0; t < S; t++) {
    out.set(l.subarray(t * Dl, (t + 1) * Dl), t * (Dl + Dg));
    out.set(g.subarray(t * Dg, (t + 1) * Dg), t * (Dl + Dg) + Dl);
  }
  return { data: out, tokens: S };
}

/** SDXLClipModel.encode_token_weights through the patched encoders (LoRA merged per run). */
export async function encodePatchedSdxl(t: PatchedSdxlText, tokens: SdxlPromptTokens, clipSkip = 2, opts: { onWarning?: (message: string) => void } = {}): Promise<SdxlTextConditioning> {
  if (clipSkip > t.base.clipL.config.numLayers || clipSkip > t.base.clipG.config.numLayers) {
    // The unpatched encoder handles this fallback (a final-LN twin); a patched twin is not built.
    throw new Error(`CLIP skip ${clipSkip} is past the depth of this SDXL text encoder with a LoRA applied`);
  }
  const l = await t.clipL.encodeTokens(tokens.l.tokens, tokens.l.weights, { clipSkip, ...vectorOptions(tokens.l, opts) });
  const g = await t.clipG.encodeTokens(tokens.g.tokens, tokens.g.weights, { clipSkip, ...vectorOptions(tokens.g, opts) });
  const Dl = t.base.clipL.config.hiddenSize;
  const Dg = t.base.clipG.config.hiddenSize;
  const ctx = concatTextFeatures(l.cond, Dl, g.cond, Dg);
  return { context: ctx.data, contextShape: [1, ctx.tokens, Dl + Dg], pooled: g.pooled, pooledShape: [1, g.pooled.length] };
}
