export * from './adm.js';
export * from './checkpoint.js';
export * from './conditioning.js';
export * from './sampling.js';
export * from './model.js';
