export * from './config.js';
export * from './text-encoder.js';
export * from './encode.js';
