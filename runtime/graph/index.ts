export * from './ir.js';
export * from './builder.js';
export * from './compile.js';
export * from './session.js';
