import { statSync } from 'node:fs';
import { detectModelFamily } from '../../runtime/models/families/registry.js';
import { ControlNet } from '../../runtime/models/controlnet/controlnet.js';
import { isT2IAdapterFile, T2IAdapter } from '../../runtime/models/t2i/adapter.js';
import { Vae } from '../../runtime/models/vae/index.js';
import { settleAdapters } from '../../runtime/pipeline/adapter-bake.js';
import { loadResAdapter, resolveResAdapterFiles, type ResAdapter } from '../../runtime/adapters/resadapter.js';
import { applyResAdapter, loadLoraForModels } from '../../runtime/pipeline/adapter-loaders.js';
import { PRECISIONS, precisionSchema } from '../../runtime/graph/precision.js';
import { readSidecar, sidecarPath } from '../../runtime/pipeline/sdxl-loader.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import type { ModelFolder } from '../../runtime/config/model-folders.js';
import type { RuntimeEnv } from '../env.js';
import type { NodeSpec } from '../spec.js';
import { addLora } from './clip-value.js';
import { familyNodes, type LoadedFamilyId } from './families.js';
import type { ClipValue, ModelValue } from './types.js';
import { EmbeddingLibrary } from '../../runtime/text/embeddings.js';
import { join } from 'node:path';

/** The UNet's and VAE's precision: `default` follows --precision / the config file (fp32 unless set); see README "int8". */
const WEIGHT_DTYPE = {
  type: 'COMBO',
  options: ['default', ...PRECISIONS],
  default: 'default',
  tooltip: 'int8: 8-bit UNet and VAE weights, activations quantised on the fly (faster on CPUs with VNNI, ~1/4 the weight memory)',
} as const;

const STRENGTH = { type: 'FLOAT', default: 1, min: -100, max: 100, step: 0.01 } as const;

/** A model file's mtime, so replacing a file on disk invalidates cached loads (ComfyUI's IS_CHANGED). */
function mtimeOf(env: RuntimeEnv, kind: ModelFolder, name: unknown): number {
  try {
    return statSync(env.folders.resolve(kind, String(name))).mtimeMs;
  } catch {
    return NaN;
  }
}

function sidecarMtime(env: RuntimeEnv, name: unknown): number {
  try {
    return statSync(sidecarPath(env.folders.resolve('checkpoints', String(name)))).mtimeMs;
  } catch {
    return NaN;
  }
}

/** Every models root's `embeddings` folder (ComfyUI's folder name), in root order. */
export function embeddingLibrary(env: RuntimeEnv): EmbeddingLibrary {
  return new EmbeddingLibrary(env.folders.roots.map((r) => join(r, 'embeddings')));
}

export function loaderNodes(env: RuntimeEnv): NodeSpec[] {
  const list = (kind: ModelFolder) => () => env.folders.list(kind);
  return [
    {
      name: 'CheckpointLoaderSimple',
      displayName: 'Load Checkpoint',
      category: 'loaders',
      description: 'Loads a single-file SD1.x or SDXL checkpoint (.safetensors): UNet, text encoder(s) and VAE.',
      inputs: {
        required: { ckpt_name: { type: 'COMBO', options: list('checkpoints') } },
        // Optional, so ComfyUI workflows (which lack it) load unchanged.
        optional: { weight_dtype: WEIGHT_DTYPE },
      },
      outputs: [{ type: 'MODEL' }, { type: 'CLIP' }, { type: 'VAE' }],
      // The SDXL sidecar (head counts) changes what loads as much as the file does.
      isChanged: ({ ckpt_name }) => `${mtimeOf(env, 'checkpoints', ckpt_name)}|${sidecarMtime(env, ckpt_name)}`,
      async execute({ ckpt_name, weight_dtype }) {
        const path = env.folders.resolve('checkpoints', String(ckpt_name));
        const family = detectModelFamily(SafetensorsFile.open(path));
        // Files no loadable family claims (SD2.x, a VAE, a ControlNet...) go to the SD1.x loader, whose error names what they are.
        const [model, clip, vae] = await familyNodes(family?.loadable ? (family.id as LoadedFamilyId) : 'sd1').load(path, env.folders);
        const dtype = weight_dtype === undefined ? 'default' : String(weight_dtype);
        const precision = dtype === 'default' ? undefined : precisionSchema.parse(dtype);
        if (precision) (model as ModelValue).unet.base.precision = precision;
        // As ComfyUI's tokenizer, the CLIP knows the embeddings folders: `embedding:name` in a prompt reads them.
        return [model, { ...clip, embeddings: embeddingLibrary(env) }, precision ? (vae as Vae).withPrecision(precision) : vae];
      },
    },
    {
      name: 'VAELoader',
      displayName: 'Load VAE',
      category: 'loaders',
      inputs: { required: { vae_name: { type: 'COMBO', options: list('vae') } } },
      outputs: [{ type: 'VAE' }],
      isChanged: ({ vae_name }) => mtimeOf(env, 'vae', vae_name),
      execute: async ({ vae_name }) => [await Vae.load(env.folders.resolve('vae', String(vae_name)))],
    },
    {
      name: 'LoraLoader',
      displayName: 'Load LoRA',
      category: 'loaders',
      description: 'Adds a LoRA to the model and text encoder (kohya or peft/diffusers files). The inputs stay untouched.',
      inputs: {
        required: {
          model: { type: 'MODEL' },
          clip: { type: 'CLIP' },
          lora_name: { type: 'COMBO', options: list('loras') },
          strength_model: STRENGTH,
          strength_clip: STRENGTH,
        },
      },
      outputs: [{ type: 'MODEL' }, { type: 'CLIP' }],
      isChanged: ({ lora_name }) => mtimeOf(env, 'loras', lora_name),
      async execute({ model, clip, lora_name, strength_model, strength_clip }) {
        const m = model as ModelValue;
        const c = clip as ClipValue;
        const path = env.folders.resolve('loras', String(lora_name));
        const [m2, c2] = addLora(m, c, path, { name: String(lora_name), model: Number(strength_model), clip: Number(strength_clip) });
        // Merged here (large products on ORT's threads; baked in int8) rather than in the sampler's setup.
        return [{ ...m2, unet: await settleAdapters(m2.unet) }, c2];
      },
    },
    {
      name: 'LoraLoaderModelOnly',
      displayName: 'Load LoRA (model only)',
      category: 'loaders',
      inputs: { required: { model: { type: 'MODEL' }, lora_name: { type: 'COMBO', options: list('loras') }, strength_model: STRENGTH } },
      outputs: [{ type: 'MODEL' }],
      isChanged: ({ lora_name }) => mtimeOf(env, 'loras', lora_name),
      async execute({ model, lora_name, strength_model }) {
        const m = model as ModelValue;
        const r = loadLoraForModels(m.unet, undefined, env.folders.resolve('loras', String(lora_name)), Number(strength_model), 0);
        return [{ ...m, unet: await settleAdapters(r.model!) }];
      },
    },
    {
      name: 'LoadResAdapter',
      displayName: 'Load ResAdapter',
      category: 'loaders/resadapter',
      description: 'Loads a ResAdapter folder (pytorch_lora_weights + diffusion_pytorch_model, or the older resolution_* names).',
      inputs: { required: { resadapter_name: { type: 'COMBO', options: list('resadapters') } } },
      outputs: [{ type: 'RESADAPTER' }],
      isChanged: ({ resadapter_name }) => mtimeOf(env, 'resadapters', resadapter_name),
      execute({ resadapter_name }) {
        const files = resolveResAdapterFiles(env.folders.resolve('resadapters', String(resadapter_name)));
        return [{ files } satisfies Pick<ResAdapter, 'files'>];
      },
    },
    {
      name: 'ApplyResAdapter',
      displayName: 'Apply ResAdapter',
      category: 'loaders/resadapter',
      description:
        'Lets the model render at any resolution and aspect ratio: alpha scales the adapter LoRA, the GroupNorms are replaced ' +
        '(blended by norm_strength). Changing alpha never reloads or recompiles the model.',
      inputs: {
        required: {
          model: { type: 'MODEL' },
          resadapter: { type: 'RESADAPTER' },
          alpha: { type: 'FLOAT', default: 1, min: 0, max: 2, step: 0.05 },
          norm_strength: { type: 'FLOAT', default: 1, min: 0, max: 1, step: 0.05 },
        },
      },
      outputs: [{ type: 'MODEL' }],
      execute({ model, resadapter, alpha, norm_strength }) {
        const m = model as ModelValue;
        const ra = resadapter as Pick<ResAdapter, 'files'>;
        // The parse is cached by file content: an alpha change reuses it, its LoRA products and the session.
        const r = applyResAdapter(m.unet, ra.files, Number(alpha), { normStrength: Number(norm_strength) });
        return [{ ...m, unet: r.model }];
      },
    },
    {
      name: 'ResAdapterLoader',
      displayName: 'Load ResAdapter (ComfyUI-ResAdapter)',
      category: 'loaders/resadapter',
      description: 'The ComfyUI-ResAdapter node: loads and applies a ResAdapter like a LoRA loader.',
      inputs: {
        required: {
          model: { type: 'MODEL' },
          clip: { type: 'CLIP' },
          resadapter_name: { type: 'COMBO', options: list('resadapters') },
          strength_model: STRENGTH,
          strength_clip: STRENGTH,
        },
      },
      outputs: [{ type: 'MODEL' }, { type: 'CLIP' }],
      execute({ model, clip, resadapter_name, strength_model }) {
        const m = model as ModelValue;
        const r = applyResAdapter(m.unet, env.folders.resolve('resadapters', String(resadapter_name)), Number(strength_model));
        return [{ ...m, unet: r.model }, clip];
      },
    },
    {
      name: 'ControlNetLoader',
      displayName: 'Load ControlNet',
      category: 'loaders',
      inputs: { required: { control_net_name: { type: 'COMBO', options: list('controlnet') } } },
      outputs: [{ type: 'CONTROL_NET' }],
      isChanged: ({ control_net_name }) => mtimeOf(env, 'controlnet', control_net_name),
      execute: async ({ control_net_name }) => {
        const path = env.folders.resolve('controlnet', String(control_net_name));
        // T2I-Adapters share the folder and the node, as in ComfyUI; the checkpoints' sidecar can name a head width.
        if (isT2IAdapterFile(SafetensorsFile.open(path))) return [T2IAdapter.load(path)];
        const heads = readSidecar(path).numHeadChannels;
        return [await ControlNet.load(path, heads === undefined ? {} : { numHeadChannels: heads })];
      },
    },
  ];
}
