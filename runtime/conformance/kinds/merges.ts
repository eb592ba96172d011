import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClipTextEncoder, clipConfigFromHF } from '../../models/clip/index.js';
import { inferUnetConfig } from '../../models/unet/config.js';
import { UnetModel } from '../../models/unet/model.js';
import { WeightSet } from '../../models/weights.js';
import { SafetensorsFile } from '../../safetensors/reader.js';
import { addRule, blocksRule, mergeClips, mergeUnets, simpleRule, subtractRule, type MergeRule } from '../../pipeline/model-merge.js';
import { PatchedClip, PatchedUnet } from '../../pipeline/patched-model.js';
import type { ConformanceCase } from '../case.js';
import { headOverrides } from '../models.js';
import type { CaseKind } from './types.js';

interface MergeRun {
  name: string;
  nodes: Array<{ class_type: string; inputs: Record<string, unknown> }>;
}

const MODEL_ARGS = new Set(['model1', 'model2', 'clip1', 'clip2']);

/** The MergeRule of a merge node's widget inputs (prompt order matters for the block merges). */
export function ruleFromNode(classType: string, inputs: Record<string, unknown>): MergeRule {
  switch (classType) {
    case 'ModelMergeSimple':
    case 'CLIPMergeSimple':
      return simpleRule(Number(inputs.ratio));
    case 'ModelMergeAdd':
    case 'CLIPMergeAdd':
      return addRule;
    case 'ModelMergeSubtract':
    case 'CLIPMergeSubtract':
      return subtractRule(Number(inputs.multiplier));
    case 'ModelMergeBlocks':
    case 'ModelMergeSDXL':
      return blocksRule(Object.entries(inputs).filter(([k]) => !MODEL_ARGS.has(k)).map(([k, v]) => [k, Number(v)] as const));
    default:
      throw new Error(`${classType} is not a merge node`);
  }
}

function loadUnet(path: string, cfg: unknown): PatchedUnet {
  const file = SafetensorsFile.open(path);
  const w = new WeightSet(file, 'model.diffusion_model.');
  return PatchedUnet.of(new UnetModel(w, inferUnetConfig(w, headOverrides(cfg), file.metadata)));
}

/** model-merge: merged weights and a UNet forward of every merge node. */
export const modelMergeKind: CaseKind = {
  name: 'model-merge',
  matches: (c) => c.name === 'model-merge',
  async run(c) {
    const m = c.json.models;
    const cfg = m.model1.unet_config_comfy;
    const m1 = loadUnet(c.modelPath(m.model1.file), cfg);
    const m2 = loadUnet(c.modelPath(m.model2.file), cfg);
    const x = c.input('x');
    const ts = c.input('timesteps').data as Float32Array;
    const context = c.input('context');
    c.check('model1/eps', (await m1.eps(x, ts, context)).data as Float32Array);
    c.check('model2/eps', (await m2.eps(x, ts, context)).data as Float32Array);
    for (const run of c.json.runs as MergeRun[]) {
      const node = run.nodes[0]!;
      const merged = mergeUnets(m1, m2, ruleFromNode(node.class_type, node.inputs), JSON.stringify(node));
      for (const name of c.json.params.weights_recorded as string[]) {
        const t = `${run.name}/weights/${name}`;
        if (c.hasExpected(t)) c.check(t, merged.base.weights.read(name));
      }
      c.check(`${run.name}/eps`, (await merged.eps(x, ts, context)).data as Float32Array);
    }
  },
};

/** clip-merge: merged weights (token-embedding rows included) and the merged encoder's output. */
export const clipMergeKind: CaseKind = {
  name: 'clip-merge',
  matches: (c) => c.name === 'clip-merge',
  async run(c) {
    // clip1 is the text encoder of model-merge's model1.
    const sibling = join(c.dir, '..', 'model-merge');
    const mm = JSON.parse(readFileSync(join(sibling, 'case.json'), 'utf8')).models;
    const load = async (path: string, hf: Record<string, unknown> | undefined) => PatchedClip.of(await ClipTextEncoder.load(path, hf ? { config: clipConfigFromHF(hf) } : {}));
    const c1 = await load(join(sibling, mm.model1.file), mm.model1.clip_config);
    const c2 = await load(c.modelPath(c.json.models.model2.file), c.json.models.model2.clip_config);
    const tokens = Array.from(c.input('tokens').data, Number);
    const ids = [49406, ...(c.json.params.token_ids as number[]), 49407];
    for (const [name, clip] of [['clip1', c1], ['clip2', c2]] as const) {
      if (c.hasExpected(`${name}/last_hidden_state`)) c.check(`${name}/last_hidden_state`, (await clip.encodeTokens([tokens])).cond);
    }
    for (const run of c.json.runs as MergeRun[]) {
      const node = run.nodes[0]!;
      const merged = await mergeClips(c1, c2, ruleFromNode(node.class_type, node.inputs), JSON.stringify(node));
      const w = merged.base.weights;
      for (const key of c.expected.keys().filter((k) => k.startsWith(`${run.name}/weights/`))) {
        const rest = key.slice(`${run.name}/weights/`.length);
        if (rest === 'token_embedding_rows') {
          const table = w.read('embeddings.token_embedding.weight');
          const dim = w.shape('embeddings.token_embedding.weight')[1]!;
          const rows = new Float32Array(ids.length * dim);
          ids.forEach((id, i) => rows.set(table.subarray(id * dim, (id + 1) * dim), i * dim));
          c.check(key, rows);
        } else {
          // Keys are ComfyUI's "clip_l.transformer.text_model.<name>".
          c.check(key, w.read(rest.replace(/^clip_l\.transformer\.text_model\./, '')));
        }
      }
      const r = await merged.encodeTokens([tokens]);
      c.check(`${run.name}/last_hidden_state`, r.cond);
      c.check(`${run.name}/pooled`, r.pooled);
    }
  },
};
