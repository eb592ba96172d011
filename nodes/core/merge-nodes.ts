import { join } from 'node:path';
import { addRule, blocksRule, mergeUnets, simpleRule, subtractRule, type MergeRule } from '../../runtime/pipeline/model-merge.js';
import { saveCheckpoint } from '../../runtime/pipeline/checkpoint-save.js';
import type { Vae } from '../../runtime/models/vae/index.js';
import type { RuntimeEnv } from '../env.js';
import type { FloatInputSpec, NodeSpec } from '../spec.js';
import { nextImagePath } from './image-nodes.js';
import { modelFamily, type ModelFamilyId } from '../../runtime/models/families/registry.js';
import { checkpointText, mergeClip } from './clip-value.js';
import type { ClipValue, ModelValue } from './types.js';

const RATIO: FloatInputSpec = { type: 'FLOAT', default: 1.0, min: 0, max: 1, step: 0.01 };
const MULTIPLIER: FloatInputSpec = { type: 'FLOAT', default: 1.0, min: -10, max: 10, step: 0.01 };

/** A family's ModelMerge<Family> blocks, from its descriptor (ComfyUI's order; the first is the fallback). */
function familyMergeBlocks(id: ModelFamilyId): string[] {
  const f = modelFamily(id);
  if (!f.mergeBlocks) throw new Error(`${f.label} describes no per-block merge`);
  return [...f.mergeBlocks];
}

function mergeModels(node: string, a: unknown, b: unknown, rule: MergeRule, widgets: Record<string, unknown>): [ModelValue] {
  const m1 = a as ModelValue;
  const m2 = b as ModelValue;
  if (m1.family !== m2.family) throw new Error(`${node}: cannot merge a ${m1.family.toUpperCase()} model with a ${m2.family.toUpperCase()} one`);
  return [{ ...m1, unet: mergeUnets(m1.unet, m2.unet, rule, JSON.stringify([node, widgets])) }];
}

async function mergeClipValues(node: string, a: unknown, b: unknown, rule: MergeRule, widgets: Record<string, unknown>): Promise<[ClipValue]> {
  const c1 = a as ClipValue;
  const c2 = b as ClipValue;
  const tag = JSON.stringify([node, widgets]);
  if (c1.family !== c2.family) throw new Error(`${node}: cannot merge a ${c1.family.toUpperCase()} text encoder with a ${c2.family.toUpperCase()} one`);
  try {
    return [await mergeClip(c1, c2, rule, tag)];
  } catch (e) {
    throw new Error(`${node}: ${(e as Error).message}`);
  }
}

function blockNode(name: string, blocks: string[], description: string): NodeSpec {
  const widgets = Object.fromEntries(blocks.map((b) => [b, RATIO]));
  return {
    name,
    category: 'advanced/model_merging',
    description,
    inputs: { required: { model1: { type: 'MODEL' }, model2: { type: 'MODEL' }, ...widgets } },
    outputs: [{ type: 'MODEL' }],
    execute: ({ model1, model2, ...rest }) => mergeModels(name, model1, model2, blocksRule(blocks.map((b) => [b, Number(rest[b])] as const)), rest),
  };
}

export function mergeNodes(env: RuntimeEnv): NodeSpec[] {
  return [
    {
      name: 'ModelMergeSimple',
      category: 'advanced/model_merging',
      description: 'model1 * ratio + model2 * (1 - ratio), weight by weight.',
      inputs: { required: { model1: { type: 'MODEL' }, model2: { type: 'MODEL' }, ratio: RATIO } },
      outputs: [{ type: 'MODEL' }],
      execute: ({ model1, model2, ratio }) => mergeModels('ModelMergeSimple', model1, model2, simpleRule(Number(ratio)), { ratio }),
    },
    blockNode('ModelMergeBlocks', ['input', 'middle', 'out'], 'ModelMergeSimple with one ratio for the input blocks, the middle block and the output blocks.'),
    blockNode('ModelMergeSDXL', familyMergeBlocks('sdxl'), 'ModelMergeSimple with one ratio per SDXL UNet block.'),
    {
      name: 'ModelMergeAdd',
      category: 'advanced/model_merging',
      description: 'model1 + model2, weight by weight (e.g. adding a difference made by ModelMergeSubtract).',
      inputs: { required: { model1: { type: 'MODEL' }, model2: { type: 'MODEL' } } },
      outputs: [{ type: 'MODEL' }],
      execute: ({ model1, model2 }) => mergeModels('ModelMergeAdd', model1, model2, addRule, {}),
    },
    {
      name: 'ModelMergeSubtract',
      category: 'advanced/model_merging',
      description: '(model1 - model2) * multiplier, weight by weight.',
      inputs: { required: { model1: { type: 'MODEL' }, model2: { type: 'MODEL' }, multiplier: MULTIPLIER } },
      outputs: [{ type: 'MODEL' }],
      execute: ({ model1, model2, multiplier }) => mergeModels('ModelMergeSubtract', model1, model2, subtractRule(Number(multiplier)), { multiplier }),
    },
    {
      name: 'CLIPMergeSimple',
      category: 'advanced/model_merging',
      description: 'clip1 * ratio + clip2 * (1 - ratio), weight by weight.',
      inputs: { required: { clip1: { type: 'CLIP' }, clip2: { type: 'CLIP' }, ratio: RATIO } },
      outputs: [{ type: 'CLIP' }],
      execute: ({ clip1, clip2, ratio }) => mergeClipValues('CLIPMergeSimple', clip1, clip2, simpleRule(Number(ratio)), { ratio }),
    },
    {
      name: 'CLIPMergeAdd',
      category: 'advanced/model_merging',
      inputs: { required: { clip1: { type: 'CLIP' }, clip2: { type: 'CLIP' } } },
      outputs: [{ type: 'CLIP' }],
      execute: ({ clip1, clip2 }) => mergeClipValues('CLIPMergeAdd', clip1, clip2, addRule, {}),
    },
    {
      name: 'CLIPMergeSubtract',
      category: 'advanced/model_merging',
      inputs: { required: { clip1: { type: 'CLIP' }, clip2: { type: 'CLIP' }, multiplier: MULTIPLIER } },
      outputs: [{ type: 'CLIP' }],
      execute: ({ clip1, clip2, multiplier }) => mergeClipValues('CLIPMergeSubtract', clip1, clip2, subtractRule(Number(multiplier)), { multiplier }),
    },
    {
      name: 'CheckpointSave',
      category: 'advanced/model_merging',
      description: 'Saves MODEL, CLIP and VAE (merges and adapters applied) as one .safetensors checkpoint in the output folder.',
      inputs: {
        required: { model: { type: 'MODEL' }, clip: { type: 'CLIP' }, vae: { type: 'VAE' }, filename_prefix: { type: 'STRING', default: 'checkpoints/ComfyUI' } },
        hidden: { prompt: 'PROMPT', extra_pnginfo: 'EXTRA_PNGINFO' },
      },
      outputs: [],
      outputNode: true,
      execute({ model, clip, vae, filename_prefix, prompt, extra_pnginfo }) {
        const m = model as ModelValue;
        const c = clip as ClipValue;
        if (m.family !== c.family) throw new Error(`CheckpointSave: the MODEL is ${m.family.toUpperCase()} but the CLIP is ${c.family.toUpperCase()}`);
        const { dir, base, counter } = nextImagePath(env.outputDir, String(filename_prefix));
        const file = join(dir, `${base}_${String(counter).padStart(5, '0')}_.safetensors`);
        // Our own loader hints (head count, tokenizer) travel with the weights; ComfyUI ignores them.
        const meta: Record<string, string> = Object.fromEntries(Object.entries(m.unet.base.weights.file.metadata).filter(([k]) => k.startsWith('resflow.')));
        if (prompt) meta.prompt = JSON.stringify(prompt);
        for (const [k, v] of Object.entries((extra_pnginfo as Record<string, unknown> | null) ?? {})) meta[k] = JSON.stringify(v);
        const text = checkpointText(c);
        const { prefixes } = modelFamily(c.family);
        saveCheckpoint(file, [{ weights: m.unet.base.weights, overrides: m.unet.overrides(), prefix: prefixes.unet }, ...text, { weights: (vae as Vae).weights, prefix: prefixes.vae }], meta);
        return { ui: {} };
      },
    },
  ];
}
