import type { ChunkToken } from '../../text/prompt-weights.js';

/**
 * Textual-inversion vectors inside token windows. The tokenizer leaves one slot per embedding row; before the
 * encoder runs, each slot's token-embedding lookup is replaced by the row itself (position embeddings are
 * added as usual). This is ComfyUI's SDClipModel.process_tokens, including its handling of vectors whose
 * width is not the encoder's: they are dropped, later tokens shift left and the window is refilled at the
 * end with the encoder's pad token.
 */

/** Windows of ids, weights and, per slot, the inserted vector (undefined for ordinary tokens). */
export interface WindowsWithVectors {
  tokens: number[][];
  weights: number[][];
  /** Absent when no slot holds a vector. */
  vectors?: (Float32Array | undefined)[][];
}

/** Id standing in for a vector slot in `tokens`; never the end token, so pooling is unaffected. */
export const VECTOR_SLOT_ID = 0;

/** Splits tokenizer windows into ids, weights and vectors (`vector` resolves an embedding row). */
export function windowsWithVectors(chunks: ChunkToken[][], vector?: (name: string, row: number) => Float32Array, label = 'CLIP'): WindowsWithVectors {
  const tokens: number[][] = [];
  const weights: number[][] = [];
  const vectors: (Float32Array | undefined)[][] = [];
  let any = false;
  for (const w of chunks) {
    tokens.push(w.map((t) => ('id' in t ? t.id : VECTOR_SLOT_ID)));
    weights.push(w.map((t) => t.weight));
    vectors.push(
      w.map((t) => {
        if (!('embedding' in t)) return undefined;
        if (!vector) throw new Error(`${label}: textual-inversion embedding "${t.embedding}" has no vectors to insert`);
        any = true;
        return vector(t.embedding, t.row);
      }),
    );
  }
  return any ? { tokens, weights, vectors } : { tokens, weights };
}

/** What the encoder graph takes when vectors are inserted: ids plus [B,S,D] vectors and a [B,S,1] mask. */
export interface InsertedFeeds {
  ids: number[][];
  /** Zero where the slot is an ordinary token. */
  embeds: Float32Array;
  /** 1 where `embeds` replaces the token lookup, else 0. */
  mask: Float32Array;
  /** Whether any vector survived (when none did, the plain session serves the shifted ids). */
  any: boolean;
}

/**
 * Places the vectors of each window for an encoder of width `D`: mismatched ones are dropped with
 * ComfyUI's warning, the rest of the window shifts left and `pad` refills the end.
 */
export function placeVectors(
  tokens: readonly (readonly number[])[],
  vectors: readonly (readonly (Float32Array | undefined)[])[] | undefined,
  D: number,
  pad: number,
  onWarning: (message: string) => void = (m) => console.warn(m),
): InsertedFeeds {
  const S = tokens[0]?.length ?? 0;
  const embeds = new Float32Array(tokens.length * S * D);
  const mask = new Float32Array(tokens.length * S);
  let any = false;
  const ids = tokens.map((window, b) => {
    const row = vectors?.[b];
    const out: number[] = [];
    window.forEach((id, j) => {
      const v = row?.[j];
      if (!v) {
        out.push(id);
        return;
      }
      if (v.length !== D) {
        onWarning(`WARNING: shape mismatch when trying to apply embedding, embedding will be ignored ${v.length} != ${D}`);
        return;
      }
      const at = b * S + out.length;
      embeds.set(v, at * D);
      mask[at] = 1;
      any = true;
      out.push(VECTOR_SLOT_ID);
    });
    while (out.length < window.length) out.push(pad);
    return out;
  });
  return { ids, embeds, mask, any };
}
