// Prompt text -> CLIP token windows, as ComfyUI's CLIPTextEncode produces them.

export { ClipTokenizer, START_TOKEN, END_TOKEN, type ClipTokenizerOptions } from './clip-tokenizer.js';
export { cleanText, type TextCleanup } from './text-cleanup.js';
export {
  tokenizeWithWeights,
  parsePromptWeights,
  parsePythonFloat,
  type ChunkToken,
  type EmbeddingLookup,
  type TokenizeWeightsOptions,
  type WeightedSegment,
} from './prompt-weights.js';
export { findEmbeddingFile, embeddingSearchDirs } from './embedding-files.js';
