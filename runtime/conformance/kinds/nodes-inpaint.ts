import { SafetensorsFile } from '../../safetensors/reader.js';
import { WeightSet } from '../../models/weights.js';
import { inferUnetConfig } from '../../models/unet/config.js';
import { UnetModel } from '../../models/unet/model.js';
import { Vae } from '../../models/vae/index.js';
import { unetEpsModel } from '../../pipeline/eps-model.js';
import type { ImageBatch } from '../../image/image.js';
import { inpaintConditioning, vaeEncodeForInpaint } from '../../image/inpaint-prep.js';
import { inpaintConcat, prepareDenoiseMask } from '../../sampling/inpaint.js';
import { processLatentIn, SD15_LATENT_FORMAT } from '../../sampling/model-sampling.js';
import type { Latent, Shape4 } from '../../sampling/types.js';
import { headOverrides } from '../models.js';
import { caseCond, checkKSampler, type KSamplerParams } from './nodes-cond.js';
import type { CaseKind } from './types.js';

interface InpaintRun {
  name: string;
  nodes: Array<{ class_type: string; inputs: Record<string, unknown> }>;
  ksampler: KSamplerParams;
}

/** inpaint: SetLatentNoiseMask, VAEEncodeForInpaint and InpaintModelConditioning, with the 4- and 9-channel UNets. */
export const inpaintKind: CaseKind = {
  name: 'nodes-inpaint',
  matches: (c) => c.name === 'inpaint',
  async run(c, models) {
    const vae = await Vae.load(models.checkpointPath(c));
    const img = c.input('image');
    const image: ImageBatch = { data: img.data as Float32Array, shape: [...img.dims] as ImageBatch['shape'] };
    const m = c.input('mask');
    const mask = { data: m.data as Float32Array, shape: m.dims };
    const encoded = await vae.encode(image);
    const plain: Latent = { data: encoded.data, shape: [...encoded.shape] as Shape4 };
    c.check('vae_encode/samples', plain.data);
    c.check('set_latent_noise_mask/noise_mask', mask.data);
    const forInpaint = await vaeEncodeForInpaint(vae, image, mask, Number(c.json.params.grow_mask_by));
    c.check('vae_encode_for_inpaint/latent_samples', forInpaint.samples.data);
    c.check('vae_encode_for_inpaint/latent_noise_mask', forInpaint.noiseMask.data);
    const positive = caseCond(c, 'cond_A');
    const negative = caseCond(c, 'uncond');
    const imc = await inpaintConditioning(vae, image, mask);
    c.check('inpaint_model_conditioning/concat_latent_image', imc.concatLatent.data);
    c.check('inpaint_model_conditioning/concat_mask', imc.mask.data);
    c.check('inpaint_model_conditioning/latent_samples', imc.samples.data);
    c.check('inpaint_model_conditioning/latent_noise_mask', imc.mask.data);
    const inpaintCfg = c.json.models.inpaint_unet;
    const file = SafetensorsFile.open(c.modelPath(inpaintCfg.file));
    const w = new WeightSet(file, '');
    const inpaintUnet = new UnetModel(w, inferUnetConfig(w, headOverrides(inpaintCfg.unet_config_comfy), file.metadata));

    for (const run of c.json.runs as InpaintRun[]) {
      const kinds = run.nodes.map((n) => n.class_type);
      let latent = plain;
      let noiseMask: { data: Float32Array; shape: readonly number[] } | undefined;
      let pos = positive;
      let neg = negative;
      if (kinds.includes('SetLatentNoiseMask')) noiseMask = mask;
      if (kinds.includes('VAEEncodeForInpaint')) {
        latent = forInpaint.samples;
        noiseMask = forInpaint.noiseMask;
      }
      const imcNode = run.nodes.find((n) => n.class_type === 'InpaintModelConditioning');
      if (imcNode) {
        latent = imc.samples;
        pos = { ...positive, concatLatent: imc.concatLatent, concatMask: imc.mask };
        neg = { ...negative, concatLatent: imc.concatLatent, concatMask: imc.mask };
        noiseMask = imcNode.inputs.noise_mask ? imc.mask : undefined;
      }
      const useInpaintUnet = kinds.includes('UNETLoader');
      const extra: Parameters<typeof checkKSampler>[4]['extra'] = {};
      if (noiseMask) extra.noiseMask = noiseMask;
      const denoiseMask = noiseMask ? prepareDenoiseMask(noiseMask, latent.shape) : undefined;
      if (denoiseMask && c.hasExpected(`${run.name}/denoise_mask`)) c.check(`${run.name}/denoise_mask`, denoiseMask);
      if (useInpaintUnet) {
        extra.concatChannels = inpaintUnet.config.inChannels - latent.shape[1];
        const concat = inpaintConcat({
          channels: extra.concatChannels,
          shape: latent.shape,
          latentFormat: SD15_LATENT_FORMAT,
          latent: processLatentIn(SD15_LATENT_FORMAT, latent.data),
          ...(denoiseMask ? { denoiseMask } : {}),
        });
        c.check(`${run.name}/c_concat`, concat(pos));
      }
      await checkKSampler(c, models, run.name, run.ksampler, {
        latent,
        positive: pos,
        negative: neg,
        model: useInpaintUnet ? unetEpsModel(inpaintUnet) : undefined,
        extra,
      });
    }
  },
};
