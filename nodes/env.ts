export * from '../runtime/nodes-api/env.js';
