export * from './server.js';
export { HttpError } from './http.js';
export { PromptQueue, type QueuedPrompt } from './prompt-queue.js';
export type { HistoryEntry, QueueTuple } from './history.js';
export { encodePreviewFrame, BINARY_PREVIEW_IMAGE, PREVIEW_FORMAT_CODES } from './ws-hub.js';
export { DEFAULT_WORKFLOW_FILES } from './workflows.js';
