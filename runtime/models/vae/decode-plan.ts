/**
 * Whole or tiled: ComfyUI decodes a latent whole and tiles only when the whole decode runs out of memory, so
 * high-resolution output (the point of ResAdapter) is decoded without seams wherever the machine can hold it.
 * We decide before running, from an estimate of the decoder's peak memory for this very size, and still fall
 * back to tiles if an allocation fails anyway.
 */
import { readFileSync } from 'node:fs';
import { freemem } from 'node:os';
import type { VaeConfig } from './config.js';
import type { Nchw } from './tiled.js';
import type { ImageBatch, Vae } from './vae.js';

/**
 * Live full-size activation tensors at the decoder's peak, measured with onnxruntime's CPU provider on the demo
 * VAE (ch 32, 4 levels): 512² → 0.28 GB, 1024² → 0.67 GB, 1552² → 1.94 GB peak RSS, i.e. about 5–6 tensors of
 * the widest full-resolution activation. 8 leaves room for the arena's rounding and the output copies.
 */
const LIVE_TENSORS_AT_PEAK = 8;

/** Peak bytes a whole decode of a [B, C, h, w] latent needs, from the VAE's own level widths. */
export function estimateDecodeBytes(config: VaeConfig, latentShape: readonly number[]): number {
  const [b = 1, , h = 0, w = 0] = latentShape;
  const levels = config.chMult.length;
  let widest = 0;
  // Decoder level i runs at 2^i latent scale (from the top: level levels-1 at latent size); its input arrives
  // upsampled from level i+1 with that level's channels, so both widths count at this resolution.
  for (let i = 0; i < levels; i++) {
    const scale = 2 ** (levels - 1 - i);
    const channels = Math.max(config.ch * config.chMult[i]!, config.ch * (config.chMult[i + 1] ?? config.chMult[i]!));
    widest = Math.max(widest, h * scale * w * scale * channels * 4);
  }
  // Attention over the latent positions (q, k, v, output), at the deepest width.
  const attention = config.midAttention ? 4 * h * w * config.ch * config.chMult[levels - 1]! * 4 : 0;
  return b * (LIVE_TENSORS_AT_PEAK * widest + attention);
}

/** Memory the OS can give us now: MemAvailable on Linux (free + reclaimable cache), else os.freemem(). */
export function availableMemoryBytes(): number {
  try {
    const m = /^MemAvailable:\s+(\d+)\s+kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return freemem();
}

export interface DecodePlan {
  mode: 'whole' | 'tiled';
  needBytes: number;
  availableBytes: number;
  /** One line for the log and the node's output saying what was chosen and why (only set when tiling). */
  reason?: string;
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;

export function planDecode(config: VaeConfig, latentShape: readonly number[], availableBytes = availableMemoryBytes()): DecodePlan {
  const needBytes = estimateDecodeBytes(config, latentShape);
  if (needBytes <= availableBytes) return { mode: 'whole', needBytes, availableBytes };
  const [, , h = 0, w = 0] = latentShape;
  const size = `${w * config.downscale}×${h * config.downscale}`;
  return {
    mode: 'tiled',
    needBytes,
    availableBytes,
    reason: `decoding ${size} in tiles: a whole decode needs about ${gib(needBytes)}, ${gib(availableBytes)} is available (tiles can show faint seams)`,
  };
}

/** An error from a failed allocation inside onnxruntime (or V8), after which a tiled decode may still fit. */
export function isOutOfMemory(e: unknown): boolean {
  const msg = e instanceof Error ? e.message : String(e);
  return /out of memory|bad_alloc|failed to allocate|allocation failed|array buffer allocation|Invalid typed array length/i.test(msg);
}

export interface DecodeResult {
  image: ImageBatch;
  /** What ran: 'tiled' also when the whole decode was tried and ran out of memory. */
  plan: DecodePlan;
}

/**
 * ComfyUI's VAEDecode: whole when the estimate fits, tiled (ComfyUI's tile sizes) otherwise or when the whole
 * decode fails to allocate. `availableBytes` replaces the OS's figure (tests, callers with their own budget).
 */
export async function decodeWholeOrTiled(vae: Vae, latent: Nchw, availableBytes?: number): Promise<DecodeResult> {
  const plan = planDecode(vae.config, latent.shape, availableBytes);
  if (plan.mode === 'whole') {
    try {
      return { image: await vae.decode(latent), plan };
    } catch (e) {
      if (!isOutOfMemory(e)) throw e;
      const reason = `decoding in tiles: the whole decode ran out of memory (${e instanceof Error ? e.message : String(e)})`;
      return { image: await vae.decodeTiled(latent), plan: { ...plan, mode: 'tiled', reason } };
    }
  }
  return { image: await vae.decodeTiled(latent), plan };
}
