import { NodeRegistry } from '../registry.js';
import type { RuntimeEnv } from '../env.js';
import { conditioningNodes } from './conditioning-nodes.js';
import { imageNodes } from './image-nodes.js';
import { latentNodes } from './latent-nodes.js';
import { loaderNodes } from './loader-nodes.js';
import { samplerNodes, vaeNodes } from './sampler-nodes.js';
import { sdxlNodes } from './sdxl-nodes.js';
import { refinerNodes } from './refiner-nodes.js';
import { trainingNodes } from './training-nodes.js';

/** The built-in node library for one runtime environment (ComfyUI core class names where they exist). */
export function createCoreRegistry(env: RuntimeEnv): NodeRegistry {
  const registry = new NodeRegistry();
  registry.registerAll([...loaderNodes(env), ...conditioningNodes(), ...sdxlNodes(), ...refinerNodes(), ...samplerNodes(), ...vaeNodes(), ...latentNodes(), ...imageNodes(env), ...trainingNodes(env)]);
  // Our own names for nodes ComfyUI calls otherwise.
  registry.alias('LoadCheckpoint', 'CheckpointLoaderSimple');
  registry.alias('LoadControlNet', 'ControlNetLoader');
  registry.alias('ApplyControlNet', 'ControlNetApplyAdvanced');
  registry.alias('Sample', 'KSampler');
  return registry;
}
