export * from './config.js';
export * from './graph.js';
export * from './tiled.js';
export * from './vae.js';
