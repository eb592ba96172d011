import type { ApiPrompt } from './api-schema.js';
import { DEMO_CHECKPOINT, DEMO_CONTROLNET, DEMO_INPUT_IMAGE, DEMO_LCM_LORA, DEMO_RESADAPTER } from '../models/synthetic/demo.js';
import { DEMO_SDXL_CHECKPOINT, DEMO_SDXL_RESADAPTER } from '../models/synthetic/demo-sdxl.js';
import { DEMO_SDXL_REFINER_CHECKPOINT } from '../models/synthetic/demo-sdxl-refiner.js';
import { trainResAdapterWorkflow } from '../training/workflow.js';
import { SHAPES_CHECKPOINT, SHAPES_RESADAPTER } from '../shapes/arch.js';

/**
 * The shareable example workflows, written as API prompts and saved in editor format under workflows/.
 * They name the demo models so they run anywhere; point them at real files in the editor or with
 * `resflow run <file> --set 1.ckpt_name=<your checkpoint>`.
 */

const POSITIVE = 'a cozy cabin in a snowy forest at dusk, warm light in the windows, (detailed:1.2)';
const NEGATIVE = 'blurry, lowres, watermark';

type Node = ApiPrompt[string];
const n = (class_type: string, inputs: Record<string, unknown>, title?: string): Node =>
  ({ class_type, inputs, ...(title ? { _meta: { title } } : {}) }) as Node;

interface SamplerSettings {
  steps: number;
  cfg: number;
  sampler: string;
  scheduler: string;
  seed: number;
}

const DEFAULTS: SamplerSettings = { steps: 20, cfg: 7, sampler: 'euler_ancestral', scheduler: 'karras', seed: 42 };

function ksampler(model: [string, number], latent: [string, number], s: SamplerSettings, denoise = 1, pos: [string, number] = ['4', 0], neg: [string, number] = ['5', 0]): Node {
  return n('KSampler', {
    model,
    seed: s.seed,
    steps: s.steps,
    cfg: s.cfg,
    sampler_name: s.sampler,
    scheduler: s.scheduler,
    positive: pos,
    negative: neg,
    latent_image: latent,
    denoise,
  });
}

/** Loader, ResAdapter, prompts: ids 1..5, shared by every example. */
function common(): ApiPrompt {
  return {
    '1': n('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT }, 'Load Checkpoint'),
    '2': n('LoadResAdapter', { resadapter_name: DEMO_RESADAPTER }),
    '3': n('ApplyResAdapter', { model: ['1', 0], resadapter: ['2', 0], alpha: 1, norm_strength: 1 }),
    '4': n('CLIPTextEncode', { text: POSITIVE, clip: ['1', 1] }, 'Positive prompt'),
    '5': n('CLIPTextEncode', { text: NEGATIVE, clip: ['1', 1] }, 'Negative prompt'),
  };
}

/**
 * SDXL's ids 1..5: the positive prompt carries SDXL's size conditioning (render size, no crop), the
 * negative is a plain CLIPTextEncode whose sizes the sampler takes from the latent.
 */
function sdxlCommon(width: number, height: number): ApiPrompt {
  return {
    '1': n('CheckpointLoaderSimple', { ckpt_name: DEMO_SDXL_CHECKPOINT }, 'Load Checkpoint (SDXL)'),
    '2': n('LoadResAdapter', { resadapter_name: DEMO_SDXL_RESADAPTER }),
    '3': n('ApplyResAdapter', { model: ['1', 0], resadapter: ['2', 0], alpha: 1, norm_strength: 1 }),
    '4': n(
      'CLIPTextEncodeSDXL',
      { clip: ['1', 1], width, height, crop_w: 0, crop_h: 0, target_width: width, target_height: height, text_g: POSITIVE, text_l: POSITIVE },
      'Positive prompt (SDXL)',
    ),
    '5': n('CLIPTextEncode', { text: NEGATIVE, clip: ['1', 1] }, 'Negative prompt'),
  };
}

/** Text-to-image at one size, the plain model and the ResAdapter model side by side from one checkpoint. */
export function sideBySide(width: number, height: number, s: SamplerSettings = DEFAULTS, family: 'sd1' | 'sdxl' = 'sd1'): ApiPrompt {
  return paired(family === 'sdxl' ? sdxlCommon(width, height) : common(), width, height, s, `${family === 'sdxl' ? 'sdxl-' : ''}resadapter-${width}x${height}`);
}

/**
 * The editor's opening graph: ResFlow Shapes (the model this project trains, 128² only) at twice its size,
 * without and with its ResAdapter: the base draws the object twice or breaks it, the adapter draws it once.
 */
export function shapesSideBySide(width = 256, height = 256): ApiPrompt {
  const head: ApiPrompt = {
    '1': n('CheckpointLoaderSimple', { ckpt_name: SHAPES_CHECKPOINT }, 'Load Checkpoint (ResFlow Shapes)'),
    '2': n('LoadResAdapter', { resadapter_name: SHAPES_RESADAPTER }),
    '3': n('ApplyResAdapter', { model: ['1', 0], resadapter: ['2', 0], alpha: 1, norm_strength: 1 }),
    '4': n('CLIPTextEncode', { text: 'a red circle on a blue background', clip: ['1', 1] }, 'Positive prompt'),
    '5': n('CLIPTextEncode', { text: '', clip: ['1', 1] }, 'Negative prompt'),
  };
  return paired(head, width, height, { steps: 20, cfg: 4, sampler: 'euler', scheduler: 'normal', seed: 1 }, `shapes-${width}x${height}`);
}

/** Ids 6..14 after a loader/adapter/prompts head (ids 1..5): two samplers, two decodes, a labelled grid. */
function paired(head: ApiPrompt, width: number, height: number, s: SamplerSettings, tag: string): ApiPrompt {
  return {
    ...head,
    '6': n('EmptyLatentImage', { width, height, batch_size: 1 }),
    '7': { ...ksampler(['1', 0], ['6', 0], s), _meta: { title: 'KSampler (base model)' } } as Node,
    '8': { ...ksampler(['3', 0], ['6', 0], s), _meta: { title: 'KSampler (with ResAdapter)' } } as Node,
    '9': n('VAEDecode', { samples: ['7', 0], vae: ['1', 2] }),
    '10': n('VAEDecode', { samples: ['8', 0], vae: ['1', 2] }),
    '11': n('ImageGrid', { images_a: ['9', 0], images_b: ['10', 0], columns: 2, gap: 8 }, 'Base | ResAdapter'),
    '12': n('SaveImage', { images: ['11', 0], filename_prefix: `${tag}/grid` }),
    '13': n('SaveImage', { images: ['9', 0], filename_prefix: `${tag}/base` }),
    '14': n('SaveImage', { images: ['10', 0], filename_prefix: `${tag}/resadapter` }),
  };
}

export function img2img(): ApiPrompt {
  return {
    ...common(),
    '6': n('LoadImage', { image: DEMO_INPUT_IMAGE }),
    '7': n('ImageScale', { image: ['6', 0], upscale_method: 'bilinear', width: 768, height: 512, crop: 'center' }),
    '8': n('VAEEncode', { pixels: ['7', 0], vae: ['1', 2] }),
    '9': ksampler(['3', 0], ['8', 0], { ...DEFAULTS, sampler: 'dpmpp_2m', steps: 20 }, 0.6),
    '10': n('VAEDecode', { samples: ['9', 0], vae: ['1', 2] }),
    '11': n('ImageGrid', { images_a: ['7', 0], images_b: ['10', 0], columns: 2, gap: 8 }, 'Input | img2img'),
    '12': n('SaveImage', { images: ['11', 0], filename_prefix: 'img2img/grid' }),
  };
}

export function controlnet(): ApiPrompt {
  return {
    ...common(),
    '6': n('LoadImage', { image: DEMO_INPUT_IMAGE }),
    '7': n('ImageScale', { image: ['6', 0], upscale_method: 'nearest-exact', width: 768, height: 768, crop: 'center' }),
    '8': n('ControlNetLoader', { control_net_name: DEMO_CONTROLNET }),
    '9': n('ControlNetApplyAdvanced', { positive: ['4', 0], negative: ['5', 0], control_net: ['8', 0], image: ['7', 0], strength: 0.8, start_percent: 0, end_percent: 0.8 }),
    '10': n('EmptyLatentImage', { width: 768, height: 768, batch_size: 1 }),
    '11': ksampler(['3', 0], ['10', 0], DEFAULTS, 1, ['9', 0], ['9', 1]),
    '12': n('VAEDecode', { samples: ['11', 0], vae: ['1', 2] }),
    '13': n('ImageGrid', { images_a: ['7', 0], images_b: ['12', 0], columns: 2, gap: 8 }, 'Hint | result'),
    '14': n('SaveImage', { images: ['13', 0], filename_prefix: 'controlnet/grid' }),
  };
}

/** LCM-LoRA on top of ResAdapter: 4 steps, low CFG. */
export function lcm(): ApiPrompt {
  return {
    ...common(),
    '6': n('LoraLoaderModelOnly', { model: ['3', 0], lora_name: DEMO_LCM_LORA, strength_model: 1 }, 'LCM-LoRA'),
    '7': n('EmptyLatentImage', { width: 768, height: 512, batch_size: 1 }),
    '8': ksampler(['6', 0], ['7', 0], { steps: 4, cfg: 1.5, sampler: 'lcm', scheduler: 'sgm_uniform', seed: 42 }),
    '9': n('VAEDecode', { samples: ['8', 0], vae: ['1', 2] }),
    '10': n('SaveImage', { images: ['9', 0], filename_prefix: 'lcm-resadapter/lcm' }),
  };
}

/**
 * SD1.5 at 512² in seconds on a CPU: int8 UNet and VAE (the loader's weight_dtype), an LCM-LoRA with LCM
 * sampling, 4 steps at cfg 1 (so no negative pass). bench/fast-512.bench.ts times it end to end.
 */
export function fastLcmInt8(): ApiPrompt {
  return {
    '1': n('CheckpointLoaderSimple', { ckpt_name: DEMO_CHECKPOINT, weight_dtype: 'int8' }, 'Load Checkpoint (int8)'),
    '2': n('LoraLoaderModelOnly', { model: ['1', 0], lora_name: DEMO_LCM_LORA, strength_model: 1 }, 'LCM-LoRA'),
    '3': n('ModelSamplingDiscrete', { model: ['2', 0], sampling: 'lcm', zsnr: false }),
    '4': n('CLIPTextEncode', { text: POSITIVE, clip: ['1', 1] }, 'Positive prompt'),
    '5': n('CLIPTextEncode', { text: NEGATIVE, clip: ['1', 1] }, 'Negative prompt'),
    '6': n('EmptyLatentImage', { width: 512, height: 512, batch_size: 1 }),
    '7': ksampler(['3', 0], ['6', 0], { steps: 4, cfg: 1, sampler: 'lcm', scheduler: 'sgm_uniform', seed: 42 }),
    '8': n('VAEDecode', { samples: ['7', 0], vae: ['1', 2] }),
    '9': n('SaveImage', { images: ['8', 0], filename_prefix: 'fast-512/lcm-int8' }),
  };
}

/**
 * SDXL base → refiner in two KSamplerAdvanced nodes (ComfyUI's refiner example): the base runs steps
 * 0..switchAt and hands its still-noisy latent over (return_with_leftover_noise), the refiner adds no noise
 * and finishes from switchAt. Each stage conditions on its own text encoders: the base's positive carries
 * SDXL's size ids, the refiner's prompts their aesthetic scores.
 */
export function sdxlRefinerTwoStage(width = 1024, height = 1024, steps = 25, switchAt = 20): ApiPrompt {
  const sampler = { sampler_name: 'dpmpp_2m', scheduler: 'karras', steps, cfg: 7, noise_seed: 42 };
  return {
    '1': n('CheckpointLoaderSimple', { ckpt_name: DEMO_SDXL_CHECKPOINT }, 'Load Checkpoint (SDXL base)'),
    '2': n('CheckpointLoaderSimple', { ckpt_name: DEMO_SDXL_REFINER_CHECKPOINT }, 'Load Checkpoint (SDXL refiner)'),
    '3': n(
      'CLIPTextEncodeSDXL',
      { clip: ['1', 1], width, height, crop_w: 0, crop_h: 0, target_width: width, target_height: height, text_g: POSITIVE, text_l: POSITIVE },
      'Positive prompt (base)',
    ),
    '4': n('CLIPTextEncode', { text: NEGATIVE, clip: ['1', 1] }, 'Negative prompt (base)'),
    '5': n('CLIPTextEncodeSDXLRefiner', { ascore: 6, width, height, text: POSITIVE, clip: ['2', 1] }, 'Positive prompt (refiner)'),
    '6': n('CLIPTextEncodeSDXLRefiner', { ascore: 2.5, width, height, text: NEGATIVE, clip: ['2', 1] }, 'Negative prompt (refiner)'),
    '7': n('EmptyLatentImage', { width, height, batch_size: 1 }),
    '8': n(
      'KSamplerAdvanced',
      { model: ['1', 0], add_noise: 'enable', ...sampler, positive: ['3', 0], negative: ['4', 0], latent_image: ['7', 0], start_at_step: 0, end_at_step: switchAt, return_with_leftover_noise: 'enable' },
      'KSampler (base, steps 0..switch)',
    ),
    '9': n(
      'KSamplerAdvanced',
      { model: ['2', 0], add_noise: 'disable', ...sampler, positive: ['5', 0], negative: ['6', 0], latent_image: ['8', 0], start_at_step: switchAt, end_at_step: 10000, return_with_leftover_noise: 'disable' },
      'KSampler (refiner, switch..end)',
    ),
    '10': n('VAEDecode', { samples: ['9', 0], vae: ['2', 2] }),
    '11': n('SaveImage', { images: ['10', 0], filename_prefix: 'sdxl-refiner/two-stage' }),
  };
}

/**
 * File name → prompt, for every example in workflows/. The first (Shapes) is the editor's opening graph;
 * DEFAULT_WORKFLOW is the main SD1.5 example, which tests run on the demo model.
 */
export function exampleWorkflows(): Record<string, ApiPrompt> {
  return {
    'shapes-resadapter-256.json': shapesSideBySide(),
    'resadapter-txt2img-512.json': sideBySide(512, 512),
    'resadapter-txt2img-256.json': sideBySide(256, 256),
    'resadapter-txt2img-1024.json': sideBySide(1024, 1024),
    'resadapter-txt2img-384x768.json': sideBySide(384, 768),
    'resadapter-controlnet.json': controlnet(),
    'resadapter-img2img.json': img2img(),
    'lcm-lora-resadapter.json': lcm(),
    'sd15-lcm-int8-512.json': fastLcmInt8(),
    'sdxl-resadapter-txt2img-512.json': sideBySide(512, 512, DEFAULTS, 'sdxl'),
    'sdxl-resadapter-txt2img-1024.json': sideBySide(1024, 1024, DEFAULTS, 'sdxl'),
    'sdxl-resadapter-txt2img-1536x640.json': sideBySide(1536, 640, DEFAULTS, 'sdxl'),
    'sdxl-refiner-two-stage.json': sdxlRefinerTwoStage(),
    'train-resadapter.json': trainResAdapterWorkflow(),
  };
}

export const DEFAULT_WORKFLOW = 'resadapter-txt2img-512.json';
