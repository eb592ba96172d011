import { fixedAdmProvider, refinerAdm, resolveRefinerAdm, type RefinerAdmValues } from '../../runtime/models/families/sdxl-refiner/index.js';
import { SDXL_REFINER_FAMILY } from '../../runtime/models/families/sdxl-refiner/family.js';
import { tokenizeSdxl, vectorOptions } from '../../runtime/models/sdxl/conditioning.js';
import { sdxlEmbeddingOptions } from './sdxl-nodes.js';
import type { Vae } from '../../runtime/models/vae/index.js';
import { PatchedUnet } from '../../runtime/pipeline/patched-model.js';
import { PatchedOpenClip } from '../../runtime/pipeline/patched-text.js';
import { loadRefiner } from '../../runtime/pipeline/refiner-loader.js';
import type { EpsModel } from '../../runtime/sampling/types.js';
import type { ModelFolders } from '../../runtime/config/model-folders.js';
import type { NodeSpec } from '../spec.js';
import { MAX_RESOLUTION } from './latent-nodes.js';
import { clipValueOf, openClipEncoder, requireAdmIds } from './clip-value.js';
import { familyNodes } from './families.js';
import type { ClipValue, ConditioningValue, ModelValue } from './types.js';

/** CheckpointLoaderSimple's three outputs for an SDXL refiner file. */
export async function loadRefinerCheckpoint(path: string, folders: ModelFolders): Promise<[ModelValue, ClipValue, Vae]> {
  const m = await loadRefiner(path, folders);
  return [{ family: 'sdxl-refiner', unet: PatchedUnet.of(m.unet), sampling: m.sampling }, clipValueOf(SDXL_REFINER_FAMILY, [PatchedOpenClip.of(m.clipG)], m.tokenizer), m.vae];
}

/** The refiner's text conditioning: SDXL's tokenizer, only bigG encodes (penultimate, no final LN). */
export async function encodeRefinerText(c: ClipValue, text: string): Promise<ConditioningValue> {
  // SDXLTokenizer parses for both encoders (a missing embedding warns twice, as in ComfyUI); bigG alone encodes.
  const tokens = tokenizeSdxl(c.tokenizer, text, text, sdxlEmbeddingOptions(c.embeddings));
  const r = await openClipEncoder(c, 'clip_g').encodeTokens(tokens.g.tokens, tokens.g.weights, { clipSkip: c.clipSkip, ...vectorOptions(tokens.g, c.embeddings ? { onWarning: c.embeddings.warn } : {}) });
  const out: ConditioningValue = { context: r.cond, contextShape: r.condDims, pooled: r.pooled, pooledShape: [1, r.pooled.length] };
  return out;
}

/**
 * The sampler's model for a refiner MODEL: y = [pooled | height, width, crop_h, crop_w, aesthetic score]
 * per conditioning; missing sizes from the latent, a missing score 6.0 for the positive and 2.5 for the negative.
 */
export function refinerSamplerModel(model: ModelValue, positive: ConditioningValue, negative: ConditioningValue, latentShape: readonly number[]): EpsModel {
  const adm = model.unet.base.config.admInChannels;
  if (!adm) throw new Error('this SDXL refiner has no label embedding (y input)');
  const y = (c: ConditioningValue, role: 'positive' | 'negative') => {
    if (!c.pooled) throw new Error(`the ${role} conditioning has no pooled output (the head of y): encode it with the refiner's CLIP`);
    return refinerAdm(c.pooled, c.pooled.length, resolveRefinerAdm(c.refiner, role, latentShape), adm);
  };
  return model.unet.epsModel({ y: fixedAdmProvider({ cond: y(positive, 'positive'), uncond: y(negative, 'negative') }, adm) });
}

export function refinerNodes(): NodeSpec[] {
  return [
    {
      name: 'CLIPTextEncodeSDXLRefiner',
      displayName: 'CLIP Text Encode (SDXL refiner)',
      category: 'advanced/conditioning',
      description: "SDXL refiner prompt: bigG encodes the text; the aesthetic score and size go into the refiner's y vector.",
      // ComfyUI's input order, which the editor's widgets_values follow.
      inputs: {
        required: {
          ascore: { type: 'FLOAT', default: 6.0, min: 0, max: 1000, step: 0.01 },
          width: { type: 'INT', default: 1024, min: 0, max: MAX_RESOLUTION },
          height: { type: 'INT', default: 1024, min: 0, max: MAX_RESOLUTION },
          text: { type: 'STRING', multiline: true, dynamicPrompts: true },
          clip: { type: 'CLIP' },
        },
      },
      outputs: [{ type: 'CONDITIONING' }],
      async execute(i) {
        const c = i.clip as ClipValue;
        requireAdmIds('CLIPTextEncodeSDXLRefiner', c, ['aestheticScore', 'width', 'height']);
        // The family encodes the prompt as CLIPTextEncode does; the node's values go along for the sampler's y.
        const cond = await familyNodes(c.family).encodeText(c, String(i.text));
        return [{ ...cond, refiner: { aestheticScore: Number(i.ascore), width: Number(i.width), height: Number(i.height) } }];
      },
    },
  ];
}
