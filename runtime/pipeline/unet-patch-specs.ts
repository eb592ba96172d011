/**
 * ComfyUI's model-patch nodes (FreeU, FreeU_V2, PatchModelAddDownscale, HyperTile) as data: their inputs,
 * defaults and ranges, and the UnetPatch each one makes. Nodes and conformance share these.
 */
import type { DeepShrinkPatch, FreeUPatch, HyperTilePatch, UnetPatch } from '../models/unet/patches.js';
import { LATENT_RESIZE_METHODS, type LatentResizeMethod } from '../models/unet/resample-weights.js';
import type { ModelSampling } from '../sampling/model-sampling.js';

export const FREEU_DEFAULTS = {
  FreeU: { b1: 1.1, b2: 1.2, s1: 0.9, s2: 0.2 },
  FreeU_V2: { b1: 1.3, b2: 1.4, s1: 0.9, s2: 0.2 },
} as const;

export const DEEP_SHRINK_METHODS: readonly LatentResizeMethod[] = ['bicubic', 'nearest-exact', 'bilinear', 'area', 'bislerp'];

export const DEEP_SHRINK_DEFAULTS = {
  block_number: 3,
  downscale_factor: 2.0,
  start_percent: 0.0,
  end_percent: 0.35,
  downscale_after_skip: true,
  downscale_method: 'bicubic',
  upscale_method: 'bicubic',
} as const;

export const HYPERTILE_DEFAULTS = { tile_size: 256, swap_size: 2, max_depth: 0, scale_depth: false } as const;

type Inputs = Record<string, unknown>;

function num(node: string, inputs: Inputs, name: string, fallback: number, min: number, max: number, integer = false): number {
  const v = inputs[name] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    throw new Error(`${node}: ${name} must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got ${JSON.stringify(v)}`);
  }
  return v;
}

function method(node: string, inputs: Inputs, name: string, fallback: LatentResizeMethod): LatentResizeMethod {
  const v = inputs[name] ?? fallback;
  if (typeof v !== 'string' || !LATENT_RESIZE_METHODS.includes(v as LatentResizeMethod)) {
    throw new Error(`${node}: ${name} must be one of ${DEEP_SHRINK_METHODS.join(', ')}, got ${JSON.stringify(v)}`);
  }
  return v as LatentResizeMethod;
}

export function freeuPatch(node: 'FreeU' | 'FreeU_V2', inputs: Inputs): FreeUPatch {
  const d = FREEU_DEFAULTS[node];
  const get = (k: keyof typeof d) => num(node, inputs, k, d[k], 0, 10);
  return { kind: 'freeu', version: node === 'FreeU' ? 1 : 2, b1: get('b1'), b2: get('b2'), s1: get('s1'), s2: get('s2') };
}

/** PatchModelAddDownscale: percents become sigmas through the model's own schedule, as ComfyUI does at patch time. */
export function deepShrinkPatch(inputs: Inputs, ms: ModelSampling): DeepShrinkPatch {
  const n = 'PatchModelAddDownscale';
  const d = DEEP_SHRINK_DEFAULTS;
  const after = inputs.downscale_after_skip ?? d.downscale_after_skip;
  if (typeof after !== 'boolean') throw new Error(`${n}: downscale_after_skip must be a boolean, got ${JSON.stringify(after)}`);
  return {
    kind: 'deep-shrink',
    blockNumber: num(n, inputs, 'block_number', d.block_number, 1, 32, true),
    downscaleFactor: num(n, inputs, 'downscale_factor', d.downscale_factor, 0.1, 9),
    sigmaStart: ms.percentToSigma(num(n, inputs, 'start_percent', d.start_percent, 0, 1)),
    sigmaEnd: ms.percentToSigma(num(n, inputs, 'end_percent', d.end_percent, 0, 1)),
    downscaleAfterSkip: after,
    downscaleMethod: method(n, inputs, 'downscale_method', d.downscale_method),
    upscaleMethod: method(n, inputs, 'upscale_method', d.upscale_method),
  };
}

export function hyperTilePatch(inputs: Inputs): HyperTilePatch {
  const n = 'HyperTile';
  const d = HYPERTILE_DEFAULTS;
  const scale = inputs.scale_depth ?? d.scale_depth;
  if (typeof scale !== 'boolean') throw new Error(`${n}: scale_depth must be a boolean, got ${JSON.stringify(scale)}`);
  return {
    kind: 'hypertile',
    tileSize: num(n, inputs, 'tile_size', d.tile_size, 1, 2048, true),
    swapSize: num(n, inputs, 'swap_size', d.swap_size, 1, 128, true),
    maxDepth: num(n, inputs, 'max_depth', d.max_depth, 0, 10, true),
    scaleDepth: scale,
  };
}

/** The UnetPatch a model-patch node of an API prompt makes, or null for other node types. */
export function unetPatchFromNode(classType: string, inputs: Inputs, ms: ModelSampling): UnetPatch | null {
  switch (classType) {
    case 'FreeU':
    case 'FreeU_V2':
      return freeuPatch(classType, inputs);
    case 'PatchModelAddDownscale':
      return deepShrinkPatch(inputs, ms);
    case 'HyperTile':
      return hyperTilePatch(inputs);
    default:
      return null;
  }
}
