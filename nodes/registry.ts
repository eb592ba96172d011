export * from '../runtime/nodes-api/registry.js';
