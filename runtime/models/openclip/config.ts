import { ModelKeyError, type WeightSet } from '../weights.js';
import { clipConfigFromHF, type ClipConfig } from '../clip/config.js';

/** Architecture of an OpenCLIP text tower (SDXL's bigG, SD2's ViT-H text part). */
export interface OpenClipConfig extends ClipConfig {
  /** Width of the pooled output after `text_projection`; null when the file stores no projection. */
  projectionDim: number | null;
}

/** Key names relative to the tower's prefix (`conditioner.embedders.1.model.` in SDXL files). */
export const OPENCLIP_KEYS = {
  tokenEmbedding: 'token_embedding.weight',
  positionalEmbedding: 'positional_embedding',
  layer: (i: number) => `transformer.resblocks.${i}.`,
  finalLayerNorm: 'ln_final.',
  textProjection: 'text_projection',
} as const;

/**
 * The HF CLIPTextConfig form the conformance cases use for bigG (`clip_g_config`), as OpenCLIP overrides.
 * `projection_dim` is only informative: the projection's real width is read off `text_projection`.
 */
export function openClipConfigFromHF(json: Record<string, unknown>): Partial<OpenClipConfig> {
  const out: Partial<OpenClipConfig> = clipConfigFromHF(json);
  if (typeof json.projection_dim === 'number') out.projectionDim = json.projection_dim;
  return out;
}

/**
 * Reads the architecture from keys and shapes. OpenCLIP towers use exact gelu and 64-wide heads in every
 * released model, so those are the defaults; smaller test towers pass `numHeads`.
 */
export function inferOpenClipConfig(weights: WeightSet, overrides: Partial<OpenClipConfig> = {}): OpenClipConfig {
  const keyOf = (name: string) => weights.prefix + name;
  const fail = (name: string, why: string): never => {
    throw new ModelKeyError(weights.file.path, keyOf(name), why);
  };
  const tok = weights.shape(OPENCLIP_KEYS.tokenEmbedding);
  if (tok.length !== 2) fail(OPENCLIP_KEYS.tokenEmbedding, `expected a [vocab, width] table, got [${tok.join(', ')}]`);
  const [vocabSize, hiddenSize] = tok as [number, number];
  const pos = weights.shape(OPENCLIP_KEYS.positionalEmbedding);
  if (pos.length !== 2 || pos[1] !== hiddenSize) {
    fail(OPENCLIP_KEYS.positionalEmbedding, `expected [positions, ${hiddenSize}], got [${pos.join(', ')}]`);
  }
  const maxPositions = pos[0]!;

  const layerIds = new Set<number>();
  for (const n of weights.names()) {
    const m = /^transformer\.resblocks\.(\d+)\./.exec(n);
    if (m) layerIds.add(Number(m[1]));
  }
  const numLayers = layerIds.size;
  if (numLayers === 0) fail(`${OPENCLIP_KEYS.layer(0)}*`, 'no transformer blocks found');
  for (let i = 0; i < numLayers; i++) {
    // A gap means a damaged or mis-prefixed file; a shorter tower would give silently wrong output.
    if (!layerIds.has(i)) fail(`${OPENCLIP_KEYS.layer(i)}*`, `transformer block ${i} missing (found ${[...layerIds].sort((a, b) => a - b).join(', ')})`);
  }
  const fc = weights.shape(`${OPENCLIP_KEYS.layer(0)}mlp.c_fc.weight`);
  if (fc.length !== 2 || fc[1] !== hiddenSize) fail(`${OPENCLIP_KEYS.layer(0)}mlp.c_fc.weight`, `expected [hidden, ${hiddenSize}], got [${fc.join(', ')}]`);
  const intermediateSize = fc[0]!;

  let projectionDim: number | null = null;
  if (weights.has(OPENCLIP_KEYS.textProjection)) {
    const p = weights.shape(OPENCLIP_KEYS.textProjection);
    // OpenCLIP stores [width, proj] and multiplies h @ P; a [proj, width] Linear layout would be a different file format.
    if (p.length !== 2 || p[0] !== hiddenSize) fail(OPENCLIP_KEYS.textProjection, `expected [${hiddenSize}, proj], got [${p.join(', ')}]`);
    projectionDim = p[1]!;
  }

  const inferred = { hiddenSize, numLayers, intermediateSize, vocabSize, maxPositions };
  for (const [k, v] of Object.entries(inferred) as Array<[keyof typeof inferred, number]>) {
    const o = overrides[k];
    if (o !== undefined && o !== v) {
      throw new Error(`OpenCLIP config: ${k} = ${o} was given but ${weights.file.path} (prefix "${weights.prefix}") has ${v}`);
    }
  }

  let numHeads = overrides.numHeads;
  if (numHeads === undefined) {
    if (hiddenSize < 64 || hiddenSize % 64 !== 0) {
      throw new Error(`OpenCLIP config: cannot infer the head count for width ${hiddenSize}; pass numHeads`);
    }
    numHeads = hiddenSize / 64;
  }
  if (!Number.isInteger(numHeads) || numHeads < 1 || hiddenSize % numHeads !== 0) {
    throw new Error(`OpenCLIP config: ${numHeads} heads do not divide width ${hiddenSize}`);
  }
  return {
    ...inferred,
    numHeads,
    activation: overrides.activation ?? 'gelu',
    layerNormEps: overrides.layerNormEps ?? 1e-5,
    projectionDim,
  };
}
