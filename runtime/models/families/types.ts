/**
 * What a model family is, described once: its text encoders, how a prompt becomes conditioning (pooled
 * output, the UNet's label vector y and what is embedded in it), the latent format, the ControlNet and LoRA
 * layouts, and what a ResAdapter adapts and trains. Each family is one folder beside this file and one line
 * in registry.ts; loaders, nodes and the trainer read these descriptors instead of branching on a name.
 */
import type { LatentFormat } from '../../sampling/model-sampling.js';
import type { WeightSet } from '../weights.js';

// A family's folder name; families register themselves (registry.ts), so the id set is open.
export type ModelFamilyId = string;

/** One text encoder of a checkpoint. */
export interface TextEncoderSpec {
  /** ComfyUI's name for it (also the key of an SDXL embedding file's tensor): clip_l, clip_g, clip_h. */
  name: 'clip_l' | 'clip_g' | 'clip_h';
  /** HF CLIPTextModel names, or OpenCLIP names (fused in_proj, resblocks). */
  layout: 'clip' | 'openclip';
  /** Checkpoint key prefix of the encoder. */
  prefix: string;
  /** Pad token id after the end token: CLIP-L pads with its end token, OpenCLIP with 0. */
  padToken: 'end' | 0;
  /** LoRA key prefixes that address this encoder, kohya and peft (ComfyUI's mapping for this family). */
  loraPrefixes: readonly string[];
}

/** The label vector y: [pooled | E(v) for each embedded value], E a 256-wide Fourier embedding. */
export interface AdmSpec {
  /** The values embedded after the pooled output, in y order. */
  ids: readonly string[];
  embedDim: number;
}

export interface ConditioningSpec {
  /** Whether the UNet consumes the pooled text embedding (as the head of y). */
  pooled: boolean;
  /** Which encoder's pooled output heads y. */
  pooledFrom?: TextEncoderSpec['name'];
  adm: AdmSpec | null;
  /** CLIPSetLastLayer's k the loader starts at: 1 = last layer, 2 = penultimate. */
  defaultClipSkip: number;
}

export interface ControlNetSpec {
  supported: boolean;
  /** Whether the ControlNet gets the UNet's y (its own label_emb). */
  takesY: boolean;
  /**
   * Whether "diff" ControlNets exist for this family: `control_model.` weights stored as differences to the
   * family's UNet, which DiffControlNetLoader adds back (ComfyUI's diff layout).
   */
  diffLayout?: boolean;
}

export interface ResAdapterSpec {
  /** UNet-relative LDM keys a ResAdapter patches (resampler convs) or replaces (resnet norms). */
  targets(w: Pick<WeightSet, 'names'>): Set<string>;
  /** Folder-name marker of the released variants for this family (../shared/resadapter/resadapter_*_<marker>). */
  releasedMarker: string | null;
}

export interface TrainingSpec {
  /** Whether TrainResAdapter trains this family's UNet. */
  supported: boolean;
  /**
   * y of one training sample from its caption's pooled embedding and the bucket's pixel size (families with
   * a label vector only): what the sampler would build for a plain prompt at that size.
   */
  labelVector?: (pooled: Float32Array, size: { width: number; height: number }, admInChannels: number) => Float32Array;
}

export interface ModelFamily {
  id: ModelFamilyId;
  name: string;
  /** Short name for messages: SD1.x, SDXL... */
  label: string;
  /** Whether ResFlow loads checkpoints of this family (SD2.x is described and detected, not loaded yet). */
  loadable: boolean;
  /** Whether a checkpoint with these keys is of this family; the registry asks families in its order. */
  matches(has: (key: string) => boolean): boolean;
  prefixes: { unet: string; vae: string };
  textEncoders: readonly TextEncoderSpec[];
  conditioning: ConditioningSpec;
  latentFormat: LatentFormat;
  prediction: 'eps' | 'v' | 'eps-or-v';
  /** Side of the square the family was trained at (MultiDiffusion's window 0, training base resolution). */
  nativeResolution: number;
  controlNet: ControlNetSpec;
  /**
   * UNet key prefixes (relative to the UNet prefix) that ComfyUI's ModelMerge node for this family gives a
   * ratio each, in its order; the first is the fallback for keys no other matches. Absent: no such node.
   */
  mergeBlocks?: readonly string[];
  resAdapter: ResAdapterSpec;
  training: TrainingSpec;
}
