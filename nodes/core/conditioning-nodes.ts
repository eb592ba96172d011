import type { ControlNet } from '../../runtime/models/controlnet/controlnet.js';
import type { ImageBatch } from '../../runtime/image/image.js';
import type { ControlNetApplication, Shape4 } from '../../runtime/sampling/types.js';
import { tokenizeWithWeights } from '../../runtime/text/index.js';
import { windowsWithVectors } from '../../runtime/models/text-common/inserted-vectors.js';
import { mapEntries } from '../../runtime/sampling/cond-entries.js';
import type { NodeSpec } from '../spec.js';
import { familyNodes } from './families.js';
import { clipEncoder, withLastLayer } from './clip-value.js';
import type { ClipValue, ConditioningValue } from './types.js';

/**
 * ComfyUI's CLIPTextEncode for any family: an SDXL CLIP encodes the text with both encoders and keeps bigG's
 * pooled output, without sizes; the refiner's bigG alone.
 */
export async function encodeText(c: ClipValue, text: string): Promise<ConditioningValue> {
  return familyNodes(c.family).encodeText(c, text);
}

/** SD1.x: text → windows of token ids and weights → the encoder's context. */
export async function encodeSd1Text(c: ClipValue, text: string): Promise<ConditioningValue> {
  const emb = c.embeddings?.forEncoder('clip_l');
  const warn = c.embeddings?.warn;
  const windows = tokenizeWithWeights(c.tokenizer, text, emb && warn ? { embeddings: emb.lookup, onWarning: warn } : {});
  const w = windowsWithVectors(windows, emb?.vector);
  const clipSkip = { clipSkip: c.clipSkip };
  const r = await clipEncoder(c, 'clip_l').encodeTokens(w.tokens, w.weights, w.vectors && warn ? { ...clipSkip, vectors: w.vectors, onWarning: warn } : clipSkip);
  return { context: r.cond, contextShape: r.condDims, pooled: r.pooled };
}

/** NHWC image → NCHW hint as the ControlNet wants it. */
export function imageToHint(img: ImageBatch): { data: Float32Array; shape: Shape4 } {
  const [b, h, w, c] = img.shape;
  const out = new Float32Array(b * 3 * h * w);
  for (let n = 0; n < b; n++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let k = 0; k < 3; k++) out[((n * 3 + k) * h + y) * w + x] = img.data[((n * h + y) * w + x) * c + k]!;
  return { data: out, shape: [b, 3, h, w] };
}

/** The ControlNet goes onto every entry of the conditioning list, as ComfyUI's apply nodes do. */
function withControl(cond: ConditioningValue, app: ControlNetApplication): ConditioningValue {
  return mapEntries(cond, (e) => ({ ...e, controls: [...(e.controls ?? []), app] }));
}

export function conditioningNodes(): NodeSpec[] {
  return [
    {
      name: 'CLIPTextEncode',
      displayName: 'CLIP Text Encode (Prompt)',
      category: 'conditioning',
      description: "Encodes a prompt; ComfyUI's weighting syntax works: (word), (word:1.3), \\( escapes.",
      inputs: { required: { text: { type: 'STRING', multiline: true, dynamicPrompts: true }, clip: { type: 'CLIP' } } },
      outputs: [{ type: 'CONDITIONING' }],
      execute: async ({ text, clip }) => [await encodeText(clip as ClipValue, String(text))],
    },
    {
      name: 'CLIPSetLastLayer',
      displayName: 'CLIP Set Last Layer',
      category: 'conditioning',
      description: 'CLIP skip: -1 uses the last layer, -2 the penultimate (with the final layer norm, as ComfyUI).',
      inputs: { required: { clip: { type: 'CLIP' }, stop_at_clip_layer: { type: 'INT', default: -1, min: -24, max: -1, step: 1 } } },
      outputs: [{ type: 'CLIP' }],
      execute({ clip, stop_at_clip_layer }) {
        return [withLastLayer(clip as ClipValue, -Number(stop_at_clip_layer))];
      },
    },
    {
      name: 'ControlNetApplyAdvanced',
      displayName: 'Apply ControlNet',
      category: 'conditioning/controlnet',
      description: 'Attaches a ControlNet to both conditionings, active between start_percent and end_percent of sampling.',
      inputs: {
        required: {
          positive: { type: 'CONDITIONING' },
          negative: { type: 'CONDITIONING' },
          control_net: { type: 'CONTROL_NET' },
          image: { type: 'IMAGE' },
          strength: { type: 'FLOAT', default: 1, min: 0, max: 10, step: 0.01 },
          start_percent: { type: 'FLOAT', default: 0, min: 0, max: 1, step: 0.001 },
          end_percent: { type: 'FLOAT', default: 1, min: 0, max: 1, step: 0.001 },
        },
        optional: { vae: { type: 'VAE' } },
      },
      outputs: [
        { type: 'CONDITIONING', name: 'positive' },
        { type: 'CONDITIONING', name: 'negative' },
      ],
      execute({ positive, negative, control_net, image, strength, start_percent, end_percent }) {
        if (Number(strength) === 0) return [positive, negative];
        const hint = imageToHint(image as ImageBatch);
        const app: ControlNetApplication = {
          controlNet: control_net as ControlNet,
          hint: hint.data,
          hintShape: hint.shape,
          strength: Number(strength),
          startPercent: Number(start_percent),
          endPercent: Number(end_percent),
        };
        return [withControl(positive as ConditioningValue, app), withControl(negative as ConditioningValue, app)];
      },
    },
    {
      name: 'ControlNetApply',
      displayName: 'Apply ControlNet (old)',
      category: 'conditioning/controlnet',
      deprecated: true,
      inputs: {
        required: {
          conditioning: { type: 'CONDITIONING' },
          control_net: { type: 'CONTROL_NET' },
          image: { type: 'IMAGE' },
          strength: { type: 'FLOAT', default: 1, min: 0, max: 10, step: 0.01 },
        },
      },
      outputs: [{ type: 'CONDITIONING' }],
      execute({ conditioning, control_net, image, strength }) {
        if (Number(strength) === 0) return [conditioning];
        const hint = imageToHint(image as ImageBatch);
        const withNet = withControl(conditioning as ConditioningValue, { controlNet: control_net as ControlNet, hint: hint.data, hintShape: hint.shape, strength: Number(strength) });
        // As in ComfyUI, the old node's ControlNet also acts on the negative prompt.
        return [mapEntries(withNet, (e) => ({ ...e, controlApplyToUncond: true }))];
      },
    },
  ];
}
