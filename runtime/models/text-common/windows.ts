import { compileGraph, type CompiledSession, type CompileOptions, type TensorData } from '../../graph/session.js';
import { INSERTED_INPUTS } from '../clip/text-encoder.js';
import type { Graph } from '../../graph/ir.js';
import type { ClipSpecialTokens } from '../clip/config.js';

/**
 * What CLIP-L and OpenCLIP text towers share around their graphs: packing token windows into one batch,
 * ComfyUI's empty window and pooled position, token weighting against the empty prompt, one compiled
 * session per (layer, debug).
 */

/** Validates windows of S ids against the vocabulary and packs them as one int32 batch [B, S]. */
export function packWindows(windows: number[][], S: number, vocab: number, label: string): Int32Array {
  if (windows.length === 0) throw new Error(`${label}: no token windows to encode`);
  const ids = new Int32Array(windows.length * S);
  windows.forEach((w, b) => {
    if (w.length !== S) throw new Error(`${label}: window ${b} has ${w.length} tokens; this model takes exactly ${S}`);
    w.forEach((t, j) => {
      // ORT's out-of-range Gather error names no token; ids past the vocabulary are unresolved embeddings.
      if (!Number.isInteger(t) || t < 0 || t >= vocab) throw new Error(`${label}: token id ${t} at window ${b}, position ${j} is outside the vocabulary (0..${vocab - 1})`);
      ids[b * S + j] = t;
    });
  });
  return ids;
}

/** Per-token weights must come as one window per token window, of the same length. */
export function checkWeightWindows(tokens: number[][], weights: number[][] | undefined, label: string): void {
  if (!weights) return;
  if (weights.length !== tokens.length) throw new Error(`${label}: ${weights.length} weight windows for ${tokens.length} token windows`);
  weights.forEach((w, k) => {
    if (w.length !== tokens[k]!.length) throw new Error(`${label}: window ${k} has ${tokens[k]!.length} tokens but ${w.length} weights`);
  });
}

/** [start, end, pad...] as ComfyUI's gen_empty_tokens builds it. */
export function emptyWindow(special: ClipSpecialTokens, S: number): number[] {
  return [special.start, special.end, ...new Array<number>(S - 2).fill(special.pad)];
}

/**
 * Position pooled is read from: the first end token. ComfyUI counts tokens up to and including the first end
 * token and takes the last counted, so a window without one pools its last position.
 */
export function pooledIndex(window: number[], end: number): number {
  const i = window.indexOf(end);
  return i >= 0 ? i : window.length - 1;
}

/**
 * ComfyUI's token weighting against the empty prompt: (z - z_empty)·w + z_empty per weighted position,
 * rounded per op as float32 torch does; positions with weight exactly 1 are left alone. In place on `cond`.
 */
export function weightAgainstEmpty(cond: Float32Array, empty: Float32Array, weights: readonly (readonly number[])[], S: number, D: number): void {
  const f = Math.fround;
  weights.forEach((window, k) => {
    for (let j = 0; j < S; j++) {
      const w = window[j]!;
      if (w === 1) continue;
      const row = (k * S + j) * D;
      const fw = f(w);
      for (let c = 0; c < D; c++) cond[row + c] = f(f(f(cond[row + c]! - empty[j * D + c]!) * fw) + empty[j * D + c]!);
    }
  });
}

/** One compiled session per (layer, debug, variant such as inserted vectors): symbolic batch, so shared by every prompt and window count. */
export class LayerSessions {
  private readonly sessions = new Map<string, Promise<CompiledSession>>();

  constructor(private readonly compileOptions: CompileOptions) {}

  get(layer: number, debug: boolean, build: () => Graph, variant = ''): Promise<CompiledSession> {
    const key = `${layer}:${debug}:${variant}`;
    let s = this.sessions.get(key);
    if (!s) {
      s = compileGraph(build(), { role: 'text_encoder', ...this.compileOptions });
      this.sessions.set(key, s);
      s.catch(() => this.sessions.delete(key));
    }
    return s;
  }

  clear(): void {
    this.sessions.clear();
  }
}

/**
 * Inserted-vector feeds for a batch that may end with windows carrying none (the empty prompt): the
 * vectors and mask padded with zeros to `windows` windows of S slots.
 */
export function insertedFeeds(embeds: Float32Array, mask: Float32Array, windows: number, S: number, D: number): Record<string, TensorData> {
  const e = new Float32Array(windows * S * D);
  e.set(embeds.subarray(0, Math.min(embeds.length, e.length)));
  const m = new Float32Array(windows * S);
  m.set(mask.subarray(0, Math.min(mask.length, m.length)));
  return { [INSERTED_INPUTS.embeds]: { data: e, dims: [windows, S, D] }, [INSERTED_INPUTS.mask]: { data: m, dims: [windows, S, 1] } };
}
