/**
 * The node graphs `resflow eval-resolution` samples with: one ordinary txt2img prompt per (method, size, seed),
 * so every number it reports went through the same validation, executor, loaders and samplers a user's
 * workflow does. A method is the chain of model-patch nodes between the checkpoint and the sampler.
 */
import type { ApiPrompt } from '../workflow/api-schema.js';

/** What a method's patch nodes may need to know. */
export interface EvalSetup {
  checkpoint: string;
  /** ResAdapter folder name (models/resadapters); needed by the adapter methods only. */
  resadapter?: string;
  /** The side the model was trained at, in pixels (square). */
  baseSize: number;
}

export interface PatchNode {
  classType: string;
  /** Widget values; a link to the model input is added by the builder. */
  inputs: Record<string, unknown>;
  /** Set when the node needs the loaded ResAdapter on its `resadapter` input. */
  wantsResAdapter?: boolean;
}

export interface EvalMethod {
  id: string;
  label: string;
  /** Node types the method needs; a method whose nodes are not registered is left out. */
  requires: readonly string[];
  needsResAdapter: boolean;
  patches(setup: EvalSetup, width: number, height: number): PatchNode[];
}

const resAdapterPart = (part: 'lora only' | 'norms only' | 'lora and norms'): PatchNode =>
  part === 'lora and norms'
    ? { classType: 'ApplyResAdapter', inputs: { alpha: 1, norm_strength: 1 }, wantsResAdapter: true }
    : { classType: 'ApplyResAdapterPart', inputs: { part, alpha: 1, norm_strength: 1 }, wantsResAdapter: true };

/** How much larger than the base the image is (by side, geometric mean): Deep Shrink's downscale factor. */
function upscaleFactor(setup: EvalSetup, width: number, height: number): number {
  return Math.max(1, Math.sqrt((width * height) / (setup.baseSize * setup.baseSize)));
}

export const EVAL_METHODS: readonly EvalMethod[] = [
  { id: 'base', label: 'base', requires: [], needsResAdapter: false, patches: () => [] },
  { id: 'resadapter', label: 'base + ResAdapter', requires: ['LoadResAdapter', 'ApplyResAdapter'], needsResAdapter: true, patches: () => [resAdapterPart('lora and norms')] },
  { id: 'lora', label: 'ResAdapter LoRA only', requires: ['LoadResAdapter', 'ApplyResAdapterPart'], needsResAdapter: true, patches: () => [resAdapterPart('lora only')] },
  { id: 'norms', label: 'ResAdapter norms only', requires: ['LoadResAdapter', 'ApplyResAdapterPart'], needsResAdapter: true, patches: () => [resAdapterPart('norms only')] },
  {
    id: 'multidiffusion',
    label: 'MultiDiffusion',
    requires: ['MultiDiffusion'],
    needsResAdapter: false,
    patches: (s) => [{ classType: 'MultiDiffusion', inputs: { window_width: s.baseSize, window_height: s.baseSize, stride: s.baseSize / 2, batch_size: 4 } }],
  },
  {
    id: 'deepshrink',
    label: 'Deep Shrink',
    requires: ['PatchModelAddDownscale'],
    needsResAdapter: false,
    // Only the factor depends on the size; the block and the step window keep the node's own defaults.
    patches: (s, w, h) => [{ classType: 'PatchModelAddDownscale', inputs: { downscale_factor: Math.round(upscaleFactor(s, w, h) * 1000) / 1000 } }],
  },
  {
    id: 'hypertile',
    label: 'HyperTile',
    requires: ['HyperTile'],
    needsResAdapter: false,
    // ComfyUI's default tile (256 at SD1.5's 512) is half the base side; scaled the same way here.
    patches: (s) => [{ classType: 'HyperTile', inputs: { tile_size: Math.max(8, s.baseSize / 2) } }],
  },
];

export interface SampleSettings {
  steps: number;
  cfg: number;
  sampler: string;
  scheduler: string;
}

/** Widget defaults of a node type, from its `object_info` entry: the inputs a method does not set. */
export type DefaultsOf = (classType: string) => Record<string, unknown>;

/**
 * The txt2img prompt for one sample. Node ids are fixed per role, so the executor's cache shares the
 * loader, the text encodings and the patched model between samples that have them in common.
 */
export function evalPrompt(
  method: EvalMethod,
  setup: EvalSetup,
  size: { width: number; height: number },
  sample: { seed: number; caption: string },
  settings: SampleSettings,
  defaultsOf: DefaultsOf,
): ApiPrompt {
  const prompt: Record<string, { class_type: string; inputs: Record<string, unknown>; _meta?: { title: string } }> = {
    ckpt: { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: setup.checkpoint } },
    pos: { class_type: 'CLIPTextEncode', inputs: { text: sample.caption, clip: ['ckpt', 1] } },
    neg: { class_type: 'CLIPTextEncode', inputs: { text: '', clip: ['ckpt', 1] } },
    latent: { class_type: 'EmptyLatentImage', inputs: { width: size.width, height: size.height, batch_size: 1 } },
  };
  let model: [string, number] = ['ckpt', 0];
  const patches = method.patches(setup, size.width, size.height);
  if (method.needsResAdapter) {
    if (!setup.resadapter) throw new Error(`method "${method.id}" needs a ResAdapter (--resadapter)`);
    prompt.ra = { class_type: 'LoadResAdapter', inputs: { resadapter_name: setup.resadapter } };
  }
  patches.forEach((p, i) => {
    const id = `patch${i}`;
    const inputs: Record<string, unknown> = { ...defaultsOf(p.classType), ...p.inputs, model };
    if (p.wantsResAdapter) inputs.resadapter = ['ra', 0];
    prompt[id] = { class_type: p.classType, inputs, _meta: { title: method.label } };
    model = [id, 0];
  });
  prompt.sampler = {
    class_type: 'KSampler',
    inputs: {
      model,
      seed: sample.seed,
      steps: settings.steps,
      cfg: settings.cfg,
      sampler_name: settings.sampler,
      scheduler: settings.scheduler,
      positive: ['pos', 0],
      negative: ['neg', 0],
      latent_image: ['latent', 0],
      denoise: 1,
    },
  };
  prompt.decode = { class_type: 'VAEDecode', inputs: { samples: ['sampler', 0], vae: ['ckpt', 2] } };
  prompt.preview = { class_type: 'PreviewImage', inputs: { images: ['decode', 0] } };
  return prompt as ApiPrompt;
}
