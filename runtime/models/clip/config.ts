import { ModelKeyError, type WeightSet } from '../weights.js';

export type ClipActivation = 'quick_gelu' | 'gelu';

/** Architecture of a CLIP text transformer (HF CLIPTextModel layout). */
export interface ClipConfig {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  vocabSize: number;
  /** Also the sequence length: the position table is added whole, so every window has this many tokens. */
  maxPositions: number;
  activation: ClipActivation;
  layerNormEps: number;
}

/** Token ids with special meaning to the encoder (ComfyUI's `special_tokens`). */
export interface ClipSpecialTokens {
  start: number;
  end: number;
  pad: number;
}

/** SD1.x CLIP-L, as ComfyUI's SD1ClipModel sets them. SD2's OpenCLIP-H pads with 0 instead. */
export const SD1_SPECIAL_TOKENS: ClipSpecialTokens = { start: 49406, end: 49407, pad: 49407 };

/** Key names relative to the `text_model.` prefix. */
export const CLIP_KEYS = {
  tokenEmbedding: 'embeddings.token_embedding.weight',
  positionEmbedding: 'embeddings.position_embedding.weight',
  layer: (i: number) => `encoder.layers.${i}.`,
  finalLayerNorm: 'final_layer_norm.',
} as const;

/**
 * Maps an HF `config.json` (CLIPTextConfig) to config overrides. Only the fields that shapes cannot
 * answer matter in practice (heads, activation, eps); the others are kept so they can be cross-checked.
 */
export function clipConfigFromHF(json: Record<string, unknown>): Partial<ClipConfig> {
  const out: Partial<ClipConfig> = {};
  const num = (k: string) => (typeof json[k] === 'number' ? (json[k] as number) : undefined);
  const set = <K extends keyof ClipConfig>(k: K, v: ClipConfig[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set('hiddenSize', num('hidden_size'));
  set('numLayers', num('num_hidden_layers'));
  set('numHeads', num('num_attention_heads'));
  set('intermediateSize', num('intermediate_size'));
  set('vocabSize', num('vocab_size'));
  set('maxPositions', num('max_position_embeddings'));
  set('layerNormEps', num('layer_norm_eps'));
  const act = json.hidden_act;
  if (act !== undefined) {
    if (act !== 'quick_gelu' && act !== 'gelu') {
      throw new Error(`CLIP config: hidden_act "${String(act)}" is not supported (quick_gelu or gelu)`);
    }
    out.activation = act;
  }
  return out;
}

/**
 * Reads the architecture from key names and tensor shapes. Head count is the one thing shapes cannot tell:
 * every released CLIP text tower uses 64-wide heads, so hidden/64 is right for real models, and smaller
 * (test) models must say it explicitly.
 */
export function inferClipConfig(weights: WeightSet, overrides: Partial<ClipConfig> = {}): ClipConfig {
  const [vocabSize, hiddenSize] = weights.shape(CLIP_KEYS.tokenEmbedding) as [number, number];
  const [maxPositions, posDim] = weights.shape(CLIP_KEYS.positionEmbedding) as [number, number];
  const keyOf = (name: string) => weights.prefix + name;
  if (posDim !== hiddenSize) {
    throw new ModelKeyError(weights.file.path, keyOf(CLIP_KEYS.positionEmbedding), `width ${posDim} differs from the token embedding width ${hiddenSize}`);
  }

  const layerIds = new Set<number>();
  for (const n of weights.names()) {
    const m = /^encoder\.layers\.(\d+)\./.exec(n);
    if (m) layerIds.add(Number(m[1]));
  }
  const numLayers = layerIds.size;
  if (numLayers === 0) throw new ModelKeyError(weights.file.path, keyOf(`${CLIP_KEYS.layer(0)}*`), 'no encoder layers found');
  for (let i = 0; i < numLayers; i++) {
    // A gap means a damaged or mis-prefixed file; guessing a shorter model would give silently wrong output.
    if (!layerIds.has(i)) throw new ModelKeyError(weights.file.path, keyOf(`${CLIP_KEYS.layer(i)}*`), `encoder layer ${i} missing (found ${[...layerIds].sort((a, b) => a - b).join(', ')})`);
  }
  const [intermediateSize] = weights.shape(`${CLIP_KEYS.layer(0)}mlp.fc1.weight`) as [number];

  const inferred = { hiddenSize, numLayers, intermediateSize, vocabSize, maxPositions };
  for (const [k, v] of Object.entries(inferred) as Array<[keyof typeof inferred, number]>) {
    const o = overrides[k];
    if (o !== undefined && o !== v) {
      throw new Error(`CLIP config: ${k} = ${o} was given but ${weights.file.path} (prefix "${weights.prefix}") has ${v}`);
    }
  }

  let numHeads = overrides.numHeads;
  if (numHeads === undefined) {
    if (hiddenSize < 64 || hiddenSize % 64 !== 0) {
      throw new Error(`CLIP config: cannot infer the head count for hidden size ${hiddenSize}; pass numHeads`);
    }
    numHeads = hiddenSize / 64;
  }
  if (!Number.isInteger(numHeads) || numHeads < 1 || hiddenSize % numHeads !== 0) {
    throw new Error(`CLIP config: ${numHeads} heads do not divide hidden size ${hiddenSize}`);
  }

  return {
    ...inferred,
    numHeads,
    activation: overrides.activation ?? 'quick_gelu',
    layerNormEps: overrides.layerNormEps ?? 1e-5,
  };
}

/**
 * Which layer's output a ComfyUI `CLIPSetLastLayer(-k)` selects, as a 0-based layer index. ComfyUI falls
 * back to the last layer when k exceeds the depth (the node allows -24 on 12-layer models), so we do too.
 */
export function clipSkipLayer(config: ClipConfig, clipSkip = 1): number {
  if (!Number.isInteger(clipSkip) || clipSkip < 1) throw new Error(`clipSkip must be an integer >= 1 (1 = last layer), got ${clipSkip}`);
  return clipSkip > config.numLayers ? config.numLayers - 1 : config.numLayers - clipSkip;
}
