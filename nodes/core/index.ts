import { NodeRegistry } from '../registry.js';
import type { RuntimeEnv } from '../env.js';
import { conditioningNodes } from './conditioning-nodes.js';
import { conditioningAreaNodes } from './conditioning-area-nodes.js';
import { imageOpsNodes } from './image-ops-nodes.js';
import { latentOpsNodes } from './latent-ops-nodes.js';
import { maskNodes } from './mask-nodes.js';
import { imageNodes } from './image-nodes.js';
import { latentNodes } from './latent-nodes.js';
import { loaderNodes } from './loader-nodes.js';
import { multiDiffusionNodes } from './multidiffusion-node.js';
import { resAdapterPartsNodes } from './resadapter-parts-node.js';
import { samplerNodes, vaeNodes } from './sampler-nodes.js';
import { sdxlNodes } from './sdxl-nodes.js';
import { refinerNodes } from './refiner-nodes.js';
import { trainingNodes } from './training-nodes.js';
import { modelPatchNodes } from './model-patch-nodes.js';
import { mergeNodes } from './merge-nodes.js';
import { upscaleNodes } from './upscale-nodes.js';
import { diffControlNetNodes } from './diff-controlnet-nodes.js';
import { customSamplingNodes } from './custom-sampling-nodes.js';
import { modelSamplingNodes } from './model-sampling-nodes.js';
import { unetLoaderNodes } from './unet-loader-node.js';

/** The built-in node library for one runtime environment (ComfyUI core class names where they exist). */
export function createCoreRegistry(env: RuntimeEnv): NodeRegistry {
  const registry = new NodeRegistry();
  registry.registerAll([...loaderNodes(env), ...conditioningNodes(), ...sdxlNodes(), ...refinerNodes(), ...samplerNodes(), ...vaeNodes(), ...latentNodes(), ...imageNodes(env), ...trainingNodes(env)]);
  registry.registerAll(modelPatchNodes(env));
  registry.registerAll(mergeNodes(env));
  registry.registerAll(upscaleNodes(env));
  registry.registerAll(diffControlNetNodes(env));
  registry.registerAll(unetLoaderNodes(env));
  registry.registerAll([...conditioningAreaNodes(), ...latentOpsNodes(), ...maskNodes(env), ...imageOpsNodes()]);
  registry.registerAll([...customSamplingNodes(), ...modelSamplingNodes()]);
  // Our own names for nodes ComfyUI calls otherwise.
  registry.alias('LoadCheckpoint', 'CheckpointLoaderSimple');
  registry.alias('LoadControlNet', 'ControlNetLoader');
  registry.alias('ApplyControlNet', 'ControlNetApplyAdvanced');
  registry.alias('Sample', 'KSampler');
  registry.registerAll([...multiDiffusionNodes(), ...resAdapterPartsNodes()]);
  return registry;
}
