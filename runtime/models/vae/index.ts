export * from './config.js';
export * from './decode-plan.js';
export * from './graph.js';
export * from './tiled.js';
export * from './vae.js';
