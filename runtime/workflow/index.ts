export * from './issues.js';
export * from './api-schema.js';
export * from './editor-schema.js';
export * from './editor-to-api.js';
export * from './api-to-editor.js';
export * from './png.js';
export * from './import.js';
