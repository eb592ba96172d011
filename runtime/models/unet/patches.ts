/**
 * UNet forward patches in ComfyUI's sense (FreeU / FreeU_V2, PatchModelAddDownscale a.k.a. Kohya Deep Shrink,
 * HyperTile): described here as plain data, built into the UNet graph as options (unet-patch-graph.ts), and
 * fed per model call with the size-dependent constants and random choices computed below. The graph structure
 * of one call (its "variant") depends on the patches and on which of them act at that call's sizes and sigma;
 * each distinct variant is one compiled session, normally one or two per sampling run.
 */
import type { UnetConfig } from './config.js';
import { bislerpAxis, fourierLowPass, interpMatrix, pyRound, transposed, type LatentResizeMethod } from './resample-weights.js';
import type { TensorData } from '../../graph/session.js';
import type { HypernetworkPatch } from '../hypernetwork/hypernetwork.js';

export interface FreeUPatch {
  kind: 'freeu';
  version: 1 | 2;
  b1: number;
  b2: number;
  s1: number;
  s2: number;
}

export interface DeepShrinkPatch {
  kind: 'deep-shrink';
  blockNumber: number;
  downscaleFactor: number;
  /** percent_to_sigma(start_percent) / (end_percent): active while sigmaEnd <= sigma <= sigmaStart. */
  sigmaStart: number;
  sigmaEnd: number;
  downscaleAfterSkip: boolean;
  downscaleMethod: LatentResizeMethod;
  upscaleMethod: LatentResizeMethod;
}

export interface HyperTilePatch {
  kind: 'hypertile';
  tileSize: number;
  swapSize: number;
  maxDepth: number;
  scaleDepth: boolean;
}

export type UnetPatch = FreeUPatch | DeepShrinkPatch | HyperTilePatch | HypernetworkPatch;

/** What one model call needs besides x, timesteps and context. */
export interface UnetPatchCall {
  patches: readonly UnetPatch[];
  /** The step's sigma (ComfyUI's transformer_options["sigmas"][0]). */
  sigma: number;
  /** torch.randint(0, n) on the global generator (HyperTile); required when a HyperTile patch is present. */
  randint?: (n: number) => number;
  /** Sees every HyperTile choice (random_divisor results, nh then nw): diagnostics and conformance. */
  onTileChoice?: (divisor: number) => void;
}

type Size = [number, number];

/** The structure of a patched graph: equal variants share a compiled session. */
export interface UnetPatchVariant {
  freeu: FreeUPatch | null;
  /** Active Deep Shrink: where to downscale, and which output blocks must resize h to the skip. */
  shrink: { block: number; afterSkip: boolean; down: LatentResizeMethod; up: LatentResizeMethod; resizeAt: number[] } | null;
  /** attn1 layers (UNet order) that HyperTile may tile at these sizes. */
  tiled: number[];
  /** Hypernetworks on every attention's k and v, in the order applied. */
  hypernetworks: HypernetworkPatch[];
}

export function variantKey(v: UnetPatchVariant): string {
  return JSON.stringify({ ...v, hypernetworks: v.hypernetworks.map((h) => h.id) });
}

interface Trace {
  /** Sizes entering the downscale of the shrink block, and after it. */
  shrink?: { from: Size; to: Size };
  /** Per output block: h size before the patch, and the skip's size. */
  out: Array<{ h: Size; skip: Size }>;
  /** Token count of every attn1 layer, in UNet order. */
  attn1: number[];
}

/** The spatial sizes the UNet graph sees, mirroring buildUnetGraph (stride-2 convs: ceil(n/2)). */
function traceSizes(cfg: UnetConfig, hasUpsample: readonly boolean[], H: number, W: number, shrink: DeepShrinkPatch | null): Trace {
  let cur: Size = [H, W];
  const skips: Size[] = [];
  const attn1: number[] = [];
  const t: Trace = { out: [], attn1 };
  cfg.inputBlocks.forEach((blk, i) => {
    if (blk.kind === 'down') cur = [Math.ceil(cur[0] / 2), Math.ceil(cur[1] / 2)];
    if (blk.kind === 'res' && blk.attn) for (let d = 0; d < cfg.inputTransformerDepth[i]!; d++) attn1.push(cur[0] * cur[1]);
    if (shrink && i === shrink.blockNumber) {
      const f = 1 / shrink.downscaleFactor;
      const to: Size = [pyRound(cur[0] * f), pyRound(cur[1] * f)];
      t.shrink = { from: cur, to };
      if (shrink.downscaleAfterSkip) {
        skips.push(cur);
        cur = to;
      } else {
        cur = to;
        skips.push(cur);
      }
    } else skips.push(cur);
  });
  for (let d = 0; d < cfg.middleTransformerDepth; d++) attn1.push(cur[0] * cur[1]);
  let h = cur;
  cfg.outputTransformerDepth.forEach((depth, j) => {
    const skip = skips.pop()!;
    t.out.push({ h, skip });
    h = skip;
    for (let d = 0; d < depth; d++) attn1.push(h[0] * h[1]);
    if (hasUpsample[j] && skips.length) h = skips[skips.length - 1]!;
  });
  return t;
}

const same = (a: Size, b: Size) => a[0] === b[0] && a[1] === b[1];

function activeShrink(call: UnetPatchCall): DeepShrinkPatch | null {
  const s = call.patches.find((p): p is DeepShrinkPatch => p.kind === 'deep-shrink');
  return s && call.sigma <= s.sigmaStart && call.sigma >= s.sigmaEnd ? s : null;
}

/** HyperTile's apply_to test: N equals (H/2^i)*(W/2^i) for some i <= max_depth (a float compare). */
function hyperTileLevel(p: HyperTilePatch, H: number, W: number, n: number): number {
  for (let i = 0; i <= p.maxDepth; i++) if ((H / 2 ** i) * (W / 2 ** i) === n) return i;
  return -1;
}

export interface PlannedCall {
  variant: UnetPatchVariant;
  feeds: Record<string, TensorData>;
}

/**
 * Decides the variant of one call and computes its feeds. Consumes HyperTile's random draws in ComfyUI's
 * order (per tiled attn1 layer, in UNet order: nh then nw), so it must be called exactly once per model call.
 */
export function planPatchedCall(cfg: UnetConfig, layout: UnetLayout, xDims: readonly number[], call: UnetPatchCall): PlannedCall {
  const [B, , H, W] = xDims as [number, number, number, number];
  const shrink = activeShrink(call);
  const trace = traceSizes(cfg, layout.hasUpsample, H, W, shrink);
  const feeds: Record<string, TensorData> = {};
  const variant: UnetPatchVariant = { freeu: null, shrink: null, tiled: [], hypernetworks: call.patches.filter((p): p is HypernetworkPatch => p.kind === 'hypernetwork') };

  if (shrink && trace.shrink && !same(trace.shrink.from, trace.shrink.to)) {
    const resizeAt: number[] = [];
    putResize(feeds, 'shrink_in', shrink.downscaleMethod, trace.shrink.from, trace.shrink.to);
    trace.out.forEach((o, j) => {
      if (!same(o.h, o.skip)) {
        resizeAt.push(j);
        putResize(feeds, `shrink_out_${j}`, shrink.upscaleMethod, o.h, o.skip);
      }
    });
    variant.shrink = { block: shrink.blockNumber, afterSkip: shrink.downscaleAfterSkip, down: shrink.downscaleMethod, up: shrink.upscaleMethod, resizeAt };
  }

  const freeu = call.patches.find((p): p is FreeUPatch => p.kind === 'freeu');
  if (freeu) {
    variant.freeu = freeu;
    trace.out.forEach((o, j) => {
      const s = freeuScale(cfg, freeu, layout.outHChannels[j]!);
      if (!s) return;
      const [hh, ww] = o.skip;
      const fy = fourierLowPass(hh);
      const fx = fourierLowPass(ww);
      const k = s.s - 1;
      feeds[`freeu_${j}_ry`] = { data: Float32Array.from(fy.re, (v) => v * k), dims: [hh, hh] };
      feeds[`freeu_${j}_iy`] = { data: Float32Array.from(fy.im, (v) => v * k), dims: [hh, hh] };
      feeds[`freeu_${j}_rxt`] = { data: transposed(Float32Array.from(fx.re), ww, ww), dims: [ww, ww] };
      feeds[`freeu_${j}_ixt`] = { data: transposed(Float32Array.from(fx.im), ww, ww), dims: [ww, ww] };
    });
  }

  const ht = call.patches.find((p): p is HyperTilePatch => p.kind === 'hypertile');
  if (ht) {
    if (!call.randint) throw new Error('HyperTile needs the sampler seed (its tile choices continue the seeded torch generator)');
    const latentTile = Math.floor(Math.max(32, ht.tileSize) / 8);
    trace.attn1.forEach((n, k) => {
      const level = hyperTileLevel(ht, H, W, n);
      if (level < 0) return;
      const aspect = W / H;
      const h = pyRound(Math.sqrt(n * aspect));
      const w = pyRound(Math.sqrt(n / aspect));
      const factor = ht.scaleDepth ? 2 ** level : 1;
      const nh = randomDivisor(h, latentTile * factor, ht.swapSize, call.randint!);
      const nw = randomDivisor(w, latentTile * factor, ht.swapSize, call.randint!);
      call.onTileChoice?.(nh);
      call.onTileChoice?.(nw);
      if (h * w !== n) throw new Error(`HyperTile: ${n} tokens do not form a ${h}x${w} grid at this latent size (${H}x${W})`);
      variant.tiled.push(k);
      Object.assign(feeds, hyperTileFeeds(k, B, n, h, w, nh, nw));
    });
  }
  return { variant, feeds };
}

/** FreeU's scale_dict lookup on h's channel count (keys 4*model_channels and 2*model_channels). */
export function freeuScale(cfg: UnetConfig, p: FreeUPatch, channels: number): { b: number; s: number } | null {
  if (channels === cfg.modelChannels * 2) return { b: p.b2, s: p.s2 };
  if (channels === cfg.modelChannels * 4) return { b: p.b1, s: p.s1 };
  return null;
}

/** What the patches need to know of a UNet beyond its config, read once off its weights. */
export interface UnetLayout {
  /** Whether output block j ends with an upsampler. */
  hasUpsample: boolean[];
  /** Channels of h entering output block j (the middle block's output, then output block j-1's). */
  outHChannels: number[];
}

export function unetLayout(w: { has(k: string): boolean; shape(k: string): readonly number[] }, cfg: UnetConfig): UnetLayout {
  const hasUpsample = cfg.outputTransformerDepth.map((d, j) => w.has(`output_blocks.${j}.${d > 0 ? 2 : 1}.conv.weight`));
  const mid = w.has('middle_block.0.out_layers.3.weight') ? w.shape('middle_block.0.out_layers.3.weight')[0]! : cfg.modelChannels;
  const outHChannels = cfg.outputTransformerDepth.map((_, j) => (j === 0 ? mid : w.shape(`output_blocks.${j - 1}.0.out_layers.3.weight`)[0]!));
  return { hasUpsample, outHChannels };
}

/** HyperTile's random_divisor with torch.randint's exclusive high (the last option is never chosen). */
export function randomDivisor(value: number, minValue: number, maxOptions: number, randint: (n: number) => number): number {
  const lo = Math.min(minValue, value);
  const ns: number[] = [];
  for (let i = lo; i <= value && ns.length < maxOptions; i++) if (value % i === 0) ns.push(value / i);
  const idx = ns.length - 1 > 0 ? randint(ns.length - 1) : 0;
  return ns[idx]!;
}

function hyperTileFeeds(k: number, B: number, n: number, h: number, w: number, nh: number, nw: number): Record<string, TensorData> {
  const perm = new BigInt64Array(n);
  const inv = new BigInt64Array(n);
  const hh = h / nh;
  const ww = w / nw;
  let p = 0;
  // einops 'b (nh h nw w) c -> (b nh nw) (h w) c': position p of the tiled order takes token t.
  for (let a = 0; a < nh; a++)
    for (let b = 0; b < nw; b++)
      for (let y = 0; y < hh; y++)
        for (let x = 0; x < ww; x++) {
          const t = ((a * hh + y) * nw + b) * ww + x;
          perm[p] = BigInt(t);
          inv[t] = BigInt(p);
          p++;
        }
  const tiles = nh * nw;
  return {
    [`hypertile_${k}_perm`]: { data: perm, dims: [n] },
    [`hypertile_${k}_inv`]: { data: inv, dims: [n] },
    [`hypertile_${k}_shape`]: { data: BigInt64Array.from([BigInt(B * tiles), BigInt(n / tiles), -1n]), dims: [3] },
  };
}

/** Feeds for resizing [.., from] -> [.., to]: matrices for linear modes, gather data for bislerp. */
function putResize(feeds: Record<string, TensorData>, key: string, method: LatentResizeMethod, from: Size, to: Size): void {
  if (method === 'bislerp') {
    const wAxis = bislerpAxis(from[1], to[1]);
    const hAxis = bislerpAxis(from[0], to[0]);
    feeds[`${key}_w_i1`] = { data: wAxis.i1, dims: [to[1]] };
    feeds[`${key}_w_i2`] = { data: wAxis.i2, dims: [to[1]] };
    feeds[`${key}_w_r`] = { data: wAxis.ratio, dims: [1, 1, 1, to[1]] };
    feeds[`${key}_h_i1`] = { data: hAxis.i1, dims: [to[0]] };
    feeds[`${key}_h_i2`] = { data: hAxis.i2, dims: [to[0]] };
    feeds[`${key}_h_r`] = { data: hAxis.ratio, dims: [1, 1, to[0], 1] };
    return;
  }
  feeds[`${key}_my`] = { data: interpMatrix(method, from[0], to[0]), dims: [to[0], from[0]] };
  feeds[`${key}_mxt`] = { data: transposed(interpMatrix(method, from[1], to[1]), to[1], from[1]), dims: [from[1], to[1]] };
}
