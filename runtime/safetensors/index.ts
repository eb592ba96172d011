export * from './dtypes.js';
export * from './reader.js';
export * from './writer.js';
export * from './fingerprint.js';
