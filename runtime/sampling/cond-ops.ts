/**
 * The conditioning nodes' operations (ComfyUI nodes.py Conditioning*): list building, context arithmetic
 * and per-entry options that the sampler interprets (cond-resolve.ts). Every function returns new values.
 */
import { condEntries, condFromEntries, mapEntries } from './cond-entries.js';
import { SamplingValidationError, type Conditioning, type MaskTensor } from './types.js';

/** A conditioning that may carry a pooled text embedding (SDXL's y head; carried along for SD1.x). */
export interface PooledConditioning extends Conditioning {
  pooled?: Float32Array;
}

/** ConditioningCombine: the two lists one after the other. */
export function combineConds<T extends Conditioning>(a: T, b: T): T {
  return condFromEntries([...(condEntries(a) as T[]), ...(condEntries(b) as T[])]);
}

/** ConditioningConcat: each `to` entry's context followed by the first `from` entry's tokens. */
export function concatConds<T extends Conditioning>(to: T, from: T): T {
  const f = condEntries(from)[0]!;
  return mapEntries(to, (t) => {
    const [b, lt, d] = t.contextShape;
    const [bf, lf, df] = f.contextShape;
    if (b !== bf || d !== df) throw new SamplingValidationError(`ConditioningConcat: contexts [${t.contextShape.join(', ')}] and [${f.contextShape.join(', ')}] differ in batch or width`);
    const out = new Float32Array(b * (lt + lf) * d);
    for (let i = 0; i < b; i++) {
      out.set(t.context.subarray(i * lt * d, (i + 1) * lt * d), i * (lt + lf) * d);
      out.set(f.context.subarray(i * lf * d, (i + 1) * lf * d), (i * (lt + lf) + lt) * d);
    }
    return { ...t, context: out, contextShape: [b, lt + lf, d] };
  });
}

/**
 * ConditioningAverage: `to*s + from*(1-s)` per `to` entry, against the first `from` entry cut or zero-padded
 * to the entry's token count; pooled outputs likewise (or `from`'s when `to` has none).
 */
export function averageConds<T extends PooledConditioning>(to: T, from: T, toStrength: number): T {
  const f = condEntries(from)[0]! as T;
  const s = Math.fround(toStrength);
  const r = Math.fround(1 - toStrength);
  const mix = (a: Float32Array, b: (i: number) => number) => Float32Array.from(a, (v, i) => Math.fround(v * s) + Math.fround(b(i) * r));
  return mapEntries(to, (t) => {
    const [b, lt, d] = t.contextShape;
    const [bf, lf, df] = f.contextShape;
    if (d !== df) throw new SamplingValidationError(`ConditioningAverage: context widths differ (${d} vs ${df})`);
    const fromAt = (i: number) => {
      const bi = Math.floor(i / (lt * d)) % bf;
      const tok = Math.floor(i / d) % lt;
      return tok < lf ? f.context[(bi * lf + tok) * df + (i % d)]! : 0;
    };
    const out: T = { ...t, context: mix(t.context, fromAt), contextShape: [b, lt, d] };
    if (t.pooled && f.pooled) out.pooled = mix(t.pooled, (i) => f.pooled![i]!);
    else if (f.pooled) out.pooled = f.pooled;
    return out;
  });
}

/** ConditioningZeroOut: zero context and pooled output. */
export function zeroOutConds<T extends PooledConditioning>(c: T): T {
  return mapEntries(c, (t) => {
    const out: T = { ...t, context: new Float32Array(t.context.length) };
    if (t.pooled) out.pooled = new Float32Array(t.pooled.length);
    return out;
  });
}

/** ConditioningSetArea: pixels -> latent cells (//8), strength; clears 'mask bounds'. */
export function setAreaCells<T extends Conditioning>(c: T, width: number, height: number, x: number, y: number, strength: number): T {
  const area = { unit: 'cells' as const, height: Math.floor(height / 8), width: Math.floor(width / 8), y: Math.floor(y / 8), x: Math.floor(x / 8) };
  return mapEntries(c, (t) => ({ ...t, area, strength, setAreaToBounds: false }));
}

/** ConditioningSetAreaPercentage: fractions of the latent, resolved when sampling starts. */
export function setAreaFraction<T extends Conditioning>(c: T, width: number, height: number, x: number, y: number, strength: number): T {
  const area = { unit: 'fraction' as const, height, width, y, x };
  return mapEntries(c, (t) => ({ ...t, area, strength, setAreaToBounds: false }));
}

export function setStrength<T extends Conditioning>(c: T, strength: number): T {
  return mapEntries(c, (t) => ({ ...t, strength }));
}

/** ConditioningSetMask: a mask [H, W] or [B, H, W] at any resolution; 'mask bounds' crops the area to it. */
export function setMask<T extends Conditioning>(c: T, mask: MaskTensor, bounds: boolean, strength: number): T {
  return mapEntries(c, (t) => ({ ...t, mask, setAreaToBounds: bounds, maskStrength: strength }));
}

export function setTimestepRange<T extends Conditioning>(c: T, start: number, end: number): T {
  return mapEntries(c, (t) => ({ ...t, startPercent: start, endPercent: end }));
}
