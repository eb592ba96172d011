import { statSync } from 'node:fs';
import { loadDiffControlNet } from '../../runtime/pipeline/diff-controlnet.js';
import type { RuntimeEnv } from '../env.js';
import type { NodeSpec } from '../spec.js';
import { MODEL_FAMILIES, modelFamily } from '../../runtime/models/families/registry.js';
import type { ModelValue } from './types.js';

export function diffControlNetNodes(env: RuntimeEnv): NodeSpec[] {
  return [
    {
      name: 'DiffControlNetLoader',
      displayName: 'Load ControlNet Model (diff)',
      category: 'loaders',
      description: "Loads a ControlNet stored as differences to a base model: the given MODEL's weights are added to it (plain ControlNets load as they are).",
      inputs: { required: { model: { type: 'MODEL' }, control_net_name: { type: 'COMBO', options: () => env.folders.list('controlnet') } } },
      outputs: [{ type: 'CONTROL_NET' }],
      isChanged: ({ control_net_name }) => {
        try {
          return statSync(env.folders.resolve('controlnet', String(control_net_name))).mtimeMs;
        } catch {
          return NaN;
        }
      },
      execute: async ({ model, control_net_name }) => {
        const m = model as ModelValue;
        const family = modelFamily(m.family);
        if (!family.controlNet.supported || !family.controlNet.diffLayout) {
          const withDiff = MODEL_FAMILIES.filter((f) => f.loadable && f.controlNet.supported && f.controlNet.diffLayout).map((f) => f.label);
          throw new Error(`DiffControlNetLoader: ${family.label} models have no diff ControlNet layout (diff ControlNets exist for ${withDiff.join(', ')} models)`);
        }
        return [await loadDiffControlNet(env.folders.resolve('controlnet', String(control_net_name)), m.unet)];
      },
    },
  ];
}
