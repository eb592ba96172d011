import type { Dim, Shape } from './ir.js';

/** Shape inference helpers over fixed and symbolic dims. Derived symbolic dims are canonical strings. */

export function dimEq(a: Dim, b: Dim): boolean {
  return a === b;
}

export function broadcastShapes(a: Shape, b: Shape, what: string): Shape {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da === 1) out.push(db);
    else if (db === 1 || dimEq(da, db)) out.push(da);
    else if (typeof da === 'string' || typeof db === 'string') out.push(typeof da === 'string' ? da : db);
    else throw new Error(`${what}: shapes [${a.join(', ')}] and [${b.join(', ')}] do not broadcast`);
  }
  return out;
}

export function convOutDim(d: Dim, k: number, s: number, p: number, dil: number): Dim {
  if (typeof d === 'number') return Math.floor((d + 2 * p - dil * (k - 1) - 1) / s) + 1;
  if (k === 1 && s === 1 && p === 0) return d;
  if (s === 1 && 2 * p === dil * (k - 1)) return d;
  return `conv(${d},${k},${s},${p},${dil})`;
}

export function mulDim(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a * b;
  if (a === 1) return b;
  if (b === 1) return a;
  return `${wrap(a)}*${wrap(b)}`;
}

export function divDim(a: Dim, b: number): Dim {
  if (typeof a === 'number') {
    if (a % b) throw new Error(`dimension ${a} is not divisible by ${b}`);
    return a / b;
  }
  if (b === 1) return a;
  return `${wrap(a)}/${b}`;
}

export function addDims(dims: Dim[]): Dim {
  if (dims.every((d) => typeof d === 'number')) return (dims as number[]).reduce((x, y) => x + y, 0);
  return dims.map(wrap).join('+');
}

function wrap(d: Dim): string {
  return typeof d === 'number' || /^[A-Za-z_][A-Za-z0-9_]*$/.test(d) ? String(d) : `(${d})`;
}

export function sliceDim(d: Dim, start: number, end: number): Dim {
  if (typeof d === 'number') {
    const s = clampIndex(start, d);
    const e = clampIndex(end, d);
    return Math.max(0, e - s);
  }
  if (start >= 0 && end >= 0 && end < 2 ** 30) return end - start;
  return `slice(${d},${start},${end})`;
}

function clampIndex(i: number, d: number): number {
  if (i < 0) i += d;
  return Math.min(Math.max(i, 0), d);
}

/** ONNX Reshape semantics: 0 copies the input dim at that position, -1 takes what is left. */
export function reshapeShape(input: Shape, target: number[]): Shape {
  const out: Dim[] = target.map((t, i) => (t === 0 ? input[i]! : t));
  const inferAt = target.indexOf(-1);
  if (inferAt >= 0) {
    const known = out.filter((_, i) => i !== inferAt);
    const allFixed = input.every((d) => typeof d === 'number') && known.every((d) => typeof d === 'number');
    if (allFixed) {
      const total = (input as number[]).reduce((a, b) => a * b, 1);
      const rest = (known as number[]).reduce((a, b) => a * b, 1);
      if (total % rest) throw new Error(`cannot reshape [${input.join(', ')}] to [${target.join(', ')}]`);
      out[inferAt] = total / rest;
    } else {
      out[inferAt] = inferSymbolic(input, known);
    }
  }
  return out;
}

/** Cancels matching factors so that e.g. [B, C, H, W] -> [0, -1, C] infers "H*W". */
function inferSymbolic(input: Shape, known: Shape): Dim {
  const num: Dim[] = [...input];
  let numConst = 1;
  let denConst = 1;
  for (const k of known) {
    const idx = num.findIndex((d) => d === k);
    if (idx >= 0) num.splice(idx, 1);
    else if (typeof k === 'number') denConst *= k;
    else return `reshape(${input.join(',')}|${known.join(',')})`;
  }
  const syms: string[] = [];
  for (const d of num) {
    if (typeof d === 'number') numConst *= d;
    else syms.push(d);
  }
  if (numConst % denConst === 0) {
    const c = numConst / denConst;
    const parts = [...(c !== 1 || syms.length === 0 ? [String(c)] : []), ...syms.map(wrap)];
    const r = parts.join('*');
    return /^\d+$/.test(r) ? Number(r) : r;
  }
  return `${[numConst, ...syms.map(wrap)].join('*')}/${denConst}`;
}
