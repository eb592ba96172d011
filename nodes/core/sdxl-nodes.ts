import { SIZE_IDS, type SdxlSizes } from '../../runtime/models/sdxl/adm.js';
import { SDXL_FAMILY } from '../../runtime/models/families/sdxl/index.js';
import { SdxlTextEncoder, tokenizeSdxl, type SdxlEmbeddings } from '../../runtime/models/sdxl/conditioning.js';
import type { ClipTextEncoder } from '../../runtime/models/clip/index.js';
import type { OpenClipTextEncoder } from '../../runtime/models/openclip/index.js';
import type { EmbeddingLibrary } from '../../runtime/text/embeddings.js';
import { sdxlAdmProvider, type SdxlConditioning } from '../../runtime/models/sdxl/sampling.js';
import type { Vae } from '../../runtime/models/vae/index.js';
import { PatchedUnet } from '../../runtime/pipeline/patched-model.js';
import { encodePatchedSdxl, patchedSdxlText } from '../../runtime/pipeline/patched-text.js';
import { loadSdxl, type SdxlArchOverrides } from '../../runtime/pipeline/sdxl-loader.js';
import type { EpsModel } from '../../runtime/sampling/types.js';
import type { ModelFolders } from '../../runtime/config/model-folders.js';
import type { NodeSpec } from '../spec.js';
import { MAX_RESOLUTION } from './latent-nodes.js';
import { clipEncoder, clipValueOf, openClipEncoder, requireAdmIds } from './clip-value.js';
import type { ClipValue, ConditioningValue, ModelValue } from './types.js';

/** SDXL's side of the core nodes: what CheckpointLoaderSimple, CLIPTextEncode and KSampler dispatch to. */

/** tokenizeSdxl's options for a CLIP's embeddings folders: CLIP-L takes `clip_l`, bigG `clip_g`. */
export function sdxlEmbeddingOptions(lib: EmbeddingLibrary | undefined): { sdxlEmbeddings?: SdxlEmbeddings; onWarning?: (m: string) => void } {
  return lib ? { sdxlEmbeddings: { l: lib.forEncoder('clip_l'), g: lib.forEncoder('clip_g') }, onWarning: lib.warn } : {};
}

/** CheckpointLoaderSimple's three outputs for an SDXL file. */
export async function loadSdxlCheckpoint(path: string, folders: ModelFolders, overrides: SdxlArchOverrides = {}): Promise<[ModelValue, ClipValue, Vae]> {
  const m = await loadSdxl(path, folders, overrides);
  const p = patchedSdxlText(m.text);
  rememberSdxlText(m.text);
  return [{ family: 'sdxl', unet: PatchedUnet.of(m.unet), sampling: m.sampling }, clipValueOf(SDXL_FAMILY, [p.clipL, p.clipG], m.tokenizer), m.vae];
}

// The pair's unpatched encoder keeps the final-LN twins it builds for skips past the depth: one per base pair.
const sdxlTexts = new WeakMap<ClipTextEncoder, WeakMap<OpenClipTextEncoder, SdxlTextEncoder>>();

function rememberSdxlText(t: SdxlTextEncoder): void {
  let byG = sdxlTexts.get(t.clipL);
  if (!byG) sdxlTexts.set(t.clipL, (byG = new WeakMap()));
  byG.set(t.clipG, t);
}

function sdxlTextOf(l: ClipTextEncoder, g: OpenClipTextEncoder): SdxlTextEncoder {
  let byG = sdxlTexts.get(l);
  if (!byG) sdxlTexts.set(l, (byG = new WeakMap()));
  let t = byG.get(g);
  if (!t) byG.set(g, (t = SdxlTextEncoder.of(l, g)));
  return t;
}

/**
 * Both encoders on their own prompt (ComfyUI's SDXL tokenizer; one text for both in CLIPTextEncode). The
 * pooled output goes with the conditioning; sizes only when given, else the sampler takes the latent's.
 */
export async function encodeSdxlText(c: ClipValue, textG: string, textL = textG, sizes?: SdxlSizes): Promise<ConditioningValue> {
  const clipL = clipEncoder(c, 'clip_l');
  const clipG = openClipEncoder(c, 'clip_g');
  const tokens = tokenizeSdxl(c.tokenizer, textG, textL, sdxlEmbeddingOptions(c.embeddings));
  const warn = c.embeddings ? { onWarning: c.embeddings.warn } : {};
  const base = sdxlTextOf(clipL.base, clipG.base);
  const r =
    clipL.isPatched || clipG.isPatched
      ? await encodePatchedSdxl({ base, clipL, clipG }, tokens, c.clipSkip, warn)
      : await base.encodeTokens(tokens, { clipSkip: c.clipSkip, ...warn });
  const out: ConditioningValue = { context: r.context, contextShape: r.contextShape, pooled: r.pooled, pooledShape: r.pooledShape };
  if (sizes) out.sizes = { ...sizes };
  return out;
}

function asSdxl(c: ConditioningValue, side: string): SdxlConditioning {
  if (!c.pooled || !c.pooledShape) {
    throw new Error(`the ${side} conditioning has no SDXL pooled output (the head of y): encode it with the CLIP of an SDXL checkpoint`);
  }
  // ControlNets travel on the conditioning; the eps model feeds each the same y as the UNet.
  const out: SdxlConditioning = { context: c.context, contextShape: c.contextShape, pooled: c.pooled, pooledShape: c.pooledShape };
  if (c.sizes) out.sizes = c.sizes;
  return out;
}

/**
 * The sampler's model for an SDXL MODEL: the patched UNet fed each chunk's own y, built once per run
 * from that conditioning's pooled output and sizes (missing sizes from `latentShape`, as ComfyUI does).
 */
export function sdxlSamplerModel(model: ModelValue, positive: ConditioningValue, negative: ConditioningValue, latentShape: readonly number[], seed?: number | bigint): EpsModel {
  const adm = model.unet.base.config.admInChannels;
  if (!adm) throw new Error('this SDXL model has no label embedding (y input)');
  const y = sdxlAdmProvider(asSdxl(positive, 'positive'), asSdxl(negative, 'negative'), latentShape, adm);
  const latentNumel = latentShape.reduce((a, b) => a * b, 1);
  return model.unet.epsModel(seed === undefined ? { y, latentNumel } : { y, seed, latentNumel });
}

const SIZE = { type: 'INT', default: 1024, min: 0, max: MAX_RESOLUTION } as const;
const CROP = { type: 'INT', default: 0, min: 0, max: MAX_RESOLUTION } as const;

export function sdxlNodes(): NodeSpec[] {
  return [
    {
      name: 'CLIPTextEncodeSDXL',
      displayName: 'CLIP Text Encode (SDXL)',
      category: 'advanced/conditioning',
      description:
        'SDXL prompt with its size conditioning: text_g goes to OpenCLIP bigG, text_l to CLIP-L; width/height, crop and ' +
        'target size go into the y vector. An SDXL CLIP is needed.',
      // ComfyUI's input order, which the editor's widgets_values follow.
      inputs: {
        required: {
          clip: { type: 'CLIP' },
          width: SIZE,
          height: SIZE,
          crop_w: CROP,
          crop_h: CROP,
          target_width: SIZE,
          target_height: SIZE,
          text_g: { type: 'STRING', multiline: true, dynamicPrompts: true },
          text_l: { type: 'STRING', multiline: true, dynamicPrompts: true },
        },
      },
      outputs: [{ type: 'CONDITIONING' }],
      async execute(i) {
        const c = i.clip as ClipValue;
        requireAdmIds('CLIPTextEncodeSDXL', c, SIZE_IDS);
        const sizes: SdxlSizes = {
          width: Number(i.width),
          height: Number(i.height),
          cropW: Number(i.crop_w),
          cropH: Number(i.crop_h),
          targetWidth: Number(i.target_width),
          targetHeight: Number(i.target_height),
        };
        return [await encodeSdxlText(c, String(i.text_g), String(i.text_l), sizes)];
      },
    },
  ];
}
