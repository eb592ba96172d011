import { basename } from 'node:path';
import { ClipTextEncoder, clipConfigFromHF } from '../../models/clip/index.js';
import { CLIP_KEYS } from '../../models/clip/config.js';
import { OPENCLIP_KEYS } from '../../models/openclip/config.js';
import { pooledIndex } from '../../models/text-common/windows.js';
import { placeVectors, windowsWithVectors, type WindowsWithVectors } from '../../models/text-common/inserted-vectors.js';
import { tokenizeSdxl, type TokenWindows } from '../../models/sdxl/conditioning.js';
import { EmbeddingLibrary, type EncoderEmbeddings } from '../../text/embeddings.js';
import { tokenizeWithWeights, type ChunkToken } from '../../text/prompt-weights.js';
import type { WeightSet } from '../../models/weights.js';
import type { ConformanceCase } from '../case.js';
import { caseTokenizer } from './sdxl-refiner.js';
import { caseTextEncoder, isSdxlCase } from './sdxl-common.js';
import type { CaseKind } from './types.js';

interface Prompt {
  name: string;
  text: string;
  tokenize_warnings?: string[];
  encode_warnings?: string[];
  l_encode_warnings?: string[];
  g_encode_warnings?: string[];
}

function library(c: ConformanceCase, warnings: string[]): EmbeddingLibrary {
  const dir = c.json.models?.embeddings?.directory;
  if (typeof dir !== 'string') throw new Error(`${c.dir}: case.json names no embeddings directory`);
  return new EmbeddingLibrary([c.modelPath(dir)], (m) => warnings.push(m));
}

function sameWarnings(what: string, got: string[], want: string[] | undefined): void {
  const expected = want ?? [];
  if (JSON.stringify(got) !== JSON.stringify(expected)) {
    throw new Error(`${what}: warnings ${JSON.stringify(got)}, ComfyUI logs ${JSON.stringify(expected)}`);
  }
}

/**
 * The tokenization-level tensors: ids with -1 in vector slots, weights, and which file/row fills each slot.
 * Names handed out by EmbeddingLibrary are `<key>:<file>`; the case indexes its sorted file list.
 */
function checkSlots(c: ConformanceCase, prefix: string, chunks: ChunkToken[][]): void {
  const files: string[] = c.json.params.embedding_files;
  const flat = chunks.flat();
  c.check(`${prefix}/tokens`, flat.map((t) => ('id' in t ? t.id : -1)));
  // Stored as float32.
  c.check(`${prefix}/weights`, flat.map((t) => Math.fround(t.weight)));
  c.check(`${prefix}/embedding_file`, flat.map((t) => ('embedding' in t ? files.indexOf(basename(t.embedding.slice(t.embedding.indexOf(':') + 1))) : -1)));
  c.check(`${prefix}/embedding_row`, flat.map((t) => ('embedding' in t ? t.row : -1)));
}

/** Token embeddings after insertion (before position embeddings) and the pooled position per window. */
function checkInserted(c: ConformanceCase, prefix: string, w: TokenWindows | WindowsWithVectors, weights: WeightSet, tableKey: string, pad: number, end: number): void {
  const [, D] = weights.shape(tableKey) as [number, number];
  const placed = placeVectors(w.tokens, w.vectors, D, pad, () => undefined);
  const table = weights.read(tableKey);
  const S = w.tokens[0]!.length;
  const out = new Float32Array(placed.ids.length * S * D);
  placed.ids.forEach((window, b) =>
    window.forEach((id, j) => {
      const at = b * S + j;
      out.set(placed.mask[at] ? placed.embeds.subarray(at * D, (at + 1) * D) : table.subarray(id * D, (id + 1) * D), at * D);
    }),
  );
  c.check(`${prefix}/input_embeds`, out);
  c.check(`${prefix}/eos_index`, placed.ids.map((window) => pooledIndex(window, end)));
}

async function runSd15(c: ConformanceCase, models: Parameters<CaseKind['run']>[1]): Promise<void> {
  const cfg = c.json.models.checkpoint.clip_config;
  const enc = await ClipTextEncoder.load(models.checkpointPath(c), cfg ? { config: clipConfigFromHF(cfg) } : {});
  const tok = caseTokenizer(c);
  for (const p of c.json.params.prompts as Prompt[]) {
    const tokWarnings: string[] = [];
    const encWarnings: string[] = [];
    const emb = library(c, tokWarnings).forEncoder('clip_l');
    const chunks = tokenizeWithWeights(tok, p.text, { embeddings: emb.lookup, onWarning: (m) => tokWarnings.push(m) });
    sameWarnings(`${p.name} (tokenize)`, tokWarnings, p.tokenize_warnings);
    checkSlots(c, p.name, chunks);
    const w = windowsWithVectors(chunks, emb.vector);
    checkInserted(c, p.name, w, enc.weights, CLIP_KEYS.tokenEmbedding, enc.specialTokens.pad, enc.specialTokens.end);
    const r = await enc.encodeTokens(w.tokens, w.weights, { ...(w.vectors ? { vectors: w.vectors } : {}), onWarning: (m) => encWarnings.push(m) });
    sameWarnings(`${p.name} (encode)`, encWarnings, p.encode_warnings);
    c.check(`${p.name}/cond`, r.cond);
    c.check(`${p.name}/pooled`, r.pooled);
  }
}

async function runSdxl(c: ConformanceCase, models: Parameters<CaseKind['run']>[1]): Promise<void> {
  const text = await caseTextEncoder(c, models);
  const tok = caseTokenizer(c);
  for (const p of c.json.params.prompts as Prompt[]) {
    const tokWarnings: string[] = [];
    const lib = library(c, tokWarnings);
    const sides: Record<'l' | 'g', EncoderEmbeddings> = { l: lib.forEncoder('clip_l'), g: lib.forEncoder('clip_g') };
    const onWarning = (m: string) => tokWarnings.push(m);
    // The slot tensors are the tokenizer's own lists; tokenizeSdxl then splits the same tokenization.
    const chunksL = tokenizeWithWeights(tok, p.text, { embeddings: sides.l.lookup, padId: tok.endId });
    const chunksG = tokenizeWithWeights(tok, p.text, { embeddings: sides.g.lookup, padId: 0 });
    const tokens = tokenizeSdxl(tok, p.text, p.text, { sdxlEmbeddings: sides, onWarning });
    sameWarnings(`${p.name} (tokenize)`, tokWarnings, p.tokenize_warnings);
    checkSlots(c, `${p.name}/l`, chunksL);
    checkSlots(c, `${p.name}/g`, chunksG);
    checkInserted(c, `${p.name}/l`, tokens.l, text.clipL.weights, CLIP_KEYS.tokenEmbedding, text.clipL.specialTokens.pad, text.clipL.specialTokens.end);
    checkInserted(c, `${p.name}/g`, tokens.g, text.clipG.weights, OPENCLIP_KEYS.tokenEmbedding, text.clipG.specialTokens.pad, text.clipG.specialTokens.end);
    const lWarnings: string[] = [];
    const gWarnings: string[] = [];
    const l = await text.clipL.encodeTokens(tokens.l.tokens, tokens.l.weights, { clipSkip: 2, ...(tokens.l.vectors ? { vectors: tokens.l.vectors } : {}), onWarning: (m) => lWarnings.push(m) });
    const g = await text.clipG.encodeTokens(tokens.g.tokens, tokens.g.weights, { clipSkip: 2, ...(tokens.g.vectors ? { vectors: tokens.g.vectors } : {}), onWarning: (m) => gWarnings.push(m) });
    sameWarnings(`${p.name} (CLIP-L encode)`, lWarnings, p.l_encode_warnings);
    sameWarnings(`${p.name} (bigG encode)`, gWarnings, p.g_encode_warnings);
    c.check(`${p.name}/l/penultimate`, l.cond);
    c.check(`${p.name}/g/penultimate`, g.cond);
    // The node path: both encoders through SdxlTextEncoder, as CLIPTextEncode runs them.
    const r = await text.encodeTokens(tokens, { clipSkip: 2, onWarning: () => undefined });
    c.check(`${p.name}/context`, r.context);
    c.check(`${p.name}/pooled`, r.pooled);
  }
}

/**
 * `embeddings-sd15` / `embeddings-sdxl`: `embedding:name` in prompts, through the tokenizer and encoders
 * CLIPTextEncode uses, with ComfyUI's warnings for missing files and dropped vectors checked verbatim.
 */
export const embeddingsKind: CaseKind = {
  name: 'embeddings',
  matches: (c) => Boolean(c.json.models?.embeddings) && Array.isArray(c.json.params?.prompts),
  run: (c, models) => (isSdxlCase(c) ? runSdxl(c, models) : runSd15(c, models)),
};
