export * from '../runtime/nodes-api/spec.js';
