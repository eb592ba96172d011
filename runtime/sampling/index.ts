export * from './types.js';
export * from './model-sampling.js';
export * from './schedulers.js';
export * from './samplers/index.js';
export * from './cfg.js';
export * from './sample.js';
export * from './preview.js';
export { randnLike, TorchGenerator } from './torch-rng.js';
export * from './guidance.js';
