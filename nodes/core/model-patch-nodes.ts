import { DEEP_SHRINK_DEFAULTS, DEEP_SHRINK_METHODS, FREEU_DEFAULTS, HYPERTILE_DEFAULTS, deepShrinkPatch, freeuPatch, hyperTilePatch } from '../../runtime/pipeline/unet-patch-specs.js';
import type { UnetPatch } from '../../runtime/models/unet/patches.js';
import { statSync } from 'node:fs';
import { loadHypernetwork, UnsupportedActivationError } from '../../runtime/models/hypernetwork/hypernetwork.js';
import type { RuntimeEnv } from '../env.js';
import type { NodeSpec } from '../spec.js';
import type { ModelValue } from './types.js';

/** A new MODEL value whose UNet also runs `patch`; the input model (and every other branch using it) is unchanged. */
function patched(model: unknown, patch: UnetPatch): [ModelValue] {
  const m = model as ModelValue;
  return [{ ...m, unet: m.unet.withForwardPatch(patch) }];
}

const factor = (def: number) => ({ type: 'FLOAT', default: def, min: 0, max: 10, step: 0.01 }) as const;

function freeuNode(name: 'FreeU' | 'FreeU_V2'): NodeSpec {
  const d = FREEU_DEFAULTS[name];
  return {
    name,
    category: 'model_patches/unet',
    description:
      name === 'FreeU'
        ? 'FreeU: scales half of the backbone features (b) and damps the low frequencies of the skip features (s) at the two deepest widths.'
        : 'FreeU v2: like FreeU, with the backbone factor weighted by the normalised channel mean.',
    inputs: { required: { model: { type: 'MODEL' }, b1: factor(d.b1), b2: factor(d.b2), s1: factor(d.s1), s2: factor(d.s2) } },
    outputs: [{ type: 'MODEL' }],
    execute: ({ model, ...rest }) => patched(model, freeuPatch(name, rest)),
  };
}

function hypernetworkNode(env: RuntimeEnv): NodeSpec {
  return {
    name: 'HypernetworkLoader',
    category: 'loaders',
    description: 'Applies an A1111 hypernetwork (.pt from models/hypernetworks) to the keys and values of every attention of a matching width.',
    inputs: {
      required: {
        model: { type: 'MODEL' },
        hypernetwork_name: { type: 'COMBO', options: () => env.folders.list('hypernetworks') },
        strength: { type: 'FLOAT', default: 1.0, min: -10, max: 10, step: 0.01 },
      },
    },
    outputs: [{ type: 'MODEL' }],
    isChanged: ({ hypernetwork_name }) => {
      try {
        return statSync(env.folders.resolve('hypernetworks', String(hypernetwork_name))).mtimeMs;
      } catch {
        return NaN;
      }
    },
    execute({ model, hypernetwork_name, strength }, ctx) {
      try {
        return patched(model, loadHypernetwork(env.folders.resolve('hypernetworks', String(hypernetwork_name)), Number(strength)));
      } catch (e) {
        // As ComfyUI: an activation it does not know leaves the model as it is, with the reason logged.
        if (!(e instanceof UnsupportedActivationError)) throw e;
        ctx.log(e.message);
        return [model as ModelValue];
      }
    },
  };
}

export function modelPatchNodes(env: RuntimeEnv): NodeSpec[] {
  const ds = DEEP_SHRINK_DEFAULTS;
  const ht = HYPERTILE_DEFAULTS;
  return [
    hypernetworkNode(env),
    freeuNode('FreeU'),
    freeuNode('FreeU_V2'),
    {
      name: 'PatchModelAddDownscale',
      displayName: 'PatchModelAddDownscale (Kohya Deep Shrink)',
      category: 'model_patches/unet',
      description:
        'Kohya Deep Shrink: between start and end percent of the schedule the UNet works at a downscaled size after input block ' +
        'block_number and upscales back before the matching skip, so large images keep the composition of the trained size.',
      inputs: {
        required: {
          model: { type: 'MODEL' },
          block_number: { type: 'INT', default: ds.block_number, min: 1, max: 32, step: 1 },
          downscale_factor: { type: 'FLOAT', default: ds.downscale_factor, min: 0.1, max: 9.0, step: 0.001 },
          start_percent: { type: 'FLOAT', default: ds.start_percent, min: 0, max: 1, step: 0.001 },
          end_percent: { type: 'FLOAT', default: ds.end_percent, min: 0, max: 1, step: 0.001 },
          downscale_after_skip: { type: 'BOOLEAN', default: ds.downscale_after_skip },
          downscale_method: { type: 'COMBO', options: DEEP_SHRINK_METHODS, default: ds.downscale_method },
          upscale_method: { type: 'COMBO', options: DEEP_SHRINK_METHODS, default: ds.upscale_method },
        },
      },
      outputs: [{ type: 'MODEL' }],
      execute: ({ model, ...rest }) => patched(model, deepShrinkPatch(rest, (model as ModelValue).sampling)),
    },
    {
      name: 'HyperTile',
      category: 'model_patches/unet',
      description:
        'HyperTile: self-attention queries are split into tiles of about tile_size pixels (random tile counts drawn from the ' +
        "sampler's seed), making large images cheaper to sample.",
      inputs: {
        required: {
          model: { type: 'MODEL' },
          tile_size: { type: 'INT', default: ht.tile_size, min: 1, max: 2048 },
          swap_size: { type: 'INT', default: ht.swap_size, min: 1, max: 128 },
          max_depth: { type: 'INT', default: ht.max_depth, min: 0, max: 10 },
          scale_depth: { type: 'BOOLEAN', default: ht.scale_depth },
        },
      },
      outputs: [{ type: 'MODEL' }],
      execute: ({ model, ...rest }) => patched(model, hyperTilePatch(rest)),
    },
  ];
}
