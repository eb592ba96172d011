/**
 * Tiled processing with feathered overlap blending, following ComfyUI's `tiled_scale_multidim` so tiled
 * VAE results line up with ComfyUI's VAEDecodeTiled / VAEEncodeTiled: tiles start every (tile - overlap)
 * pixels, each tile's outputs are weighted by a linear ramp over `overlap` (scaled) pixels at every edge,
 * and the weighted sum is divided by the summed weights.
 */

export interface Nchw {
  data: Float32Array;
  shape: [number, number, number, number];
}

export interface TileSpec {
  /** Tile size along H and W, in input pixels. */
  tileH: number;
  tileW: number;
  overlap: number;
  /** Output pixels per input pixel (8 for decode, 1/8 for encode). */
  scale: number;
  outChannels: number;
}

/** Python's round(): halves go to the even neighbour. Tile offsets must round as ComfyUI's do. */
export function pyRound(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function crop(x: Nchw, b: number, y0: number, x0: number, h: number, w: number): Nchw {
  const [, C, H, W] = x.shape;
  const out = new Float32Array(C * h * w);
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < h; y++) {
      const src = ((b * C + c) * H + y0 + y) * W + x0;
      out.set(x.data.subarray(src, src + w), (c * h + y) * w);
    }
  }
  return { data: out, shape: [1, C, h, w] };
}

function tileStarts(size: number, tile: number, overlap: number): number[] {
  if (size <= tile) return [0];
  const starts: number[] = [];
  for (let p = 0; p < size - overlap; p += tile - overlap) starts.push(p);
  return starts;
}

/** Ramp weights for one axis of a tile output of length n (all ones when the feather does not fit). */
function featherRamp(n: number, feather: number): Float32Array {
  const m = new Float32Array(n).fill(1);
  if (feather >= n) return m;
  for (let t = 0; t < feather; t++) {
    const a = (t + 1) / feather;
    m[t]! *= a;
    m[n - 1 - t]! *= a;
  }
  return m;
}

/**
 * Runs `fn` over overlapping tiles of each batch item of `input` and blends the results into an output of
 * round(size · scale) pixels. Inputs that fit one tile are passed through whole, as in ComfyUI.
 */
export async function tiledScale(input: Nchw, fn: (tile: Nchw) => Promise<Nchw>, spec: TileSpec): Promise<Nchw> {
  const [B, , H, W] = input.shape;
  const { tileH, tileW, overlap, scale, outChannels: C } = spec;
  if (tileH <= overlap || tileW <= overlap) throw new Error(`tile size ${tileH}x${tileW} must exceed the overlap ${overlap}`);
  const OH = pyRound(H * scale);
  const OW = pyRound(W * scale);
  const plane = OH * OW;
  const result = new Float32Array(B * C * plane);
  const feather = pyRound(overlap * scale);
  for (let b = 0; b < B; b++) {
    if (H <= tileH && W <= tileW) {
      const whole = await fn(crop(input, b, 0, 0, H, W));
      checkOut(whole, C, OH, OW);
      result.set(whole.data, b * C * plane);
      continue;
    }
    const acc = new Float32Array(C * plane);
    const weight = new Float32Array(plane);
    for (const y0 of tileStarts(H, tileH, overlap)) {
      for (const x0 of tileStarts(W, tileW, overlap)) {
        const h = Math.min(tileH, H - y0);
        const w = Math.min(tileW, W - x0);
        const out = await fn(crop(input, b, y0, x0, h, w));
        const [, oc, th, tw] = out.shape;
        if (oc !== C) throw new Error(`tile function returned ${oc} channels, expected ${C}`);
        const my = featherRamp(th, feather);
        const mx = featherRamp(tw, feather);
        const oy = pyRound(y0 * scale);
        const ox = pyRound(x0 * scale);
        const rows = Math.min(th, OH - oy);
        const cols = Math.min(tw, OW - ox);
        for (let y = 0; y < rows; y++) {
          for (let x = 0; x < cols; x++) {
            const m = my[y]! * mx[x]!;
            const dst = (oy + y) * OW + ox + x;
            weight[dst]! += m;
            for (let c = 0; c < C; c++) acc[c * plane + dst]! += out.data[(c * th + y) * tw + x]! * m;
          }
        }
      }
    }
    const base = b * C * plane;
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < plane; i++) result[base + c * plane + i] = acc[c * plane + i]! / weight[i]!;
    }
  }
  return { data: result, shape: [B, C, OH, OW] };
}

function checkOut(t: Nchw, C: number, H: number, W: number): void {
  const [, c, h, w] = t.shape;
  if (c !== C || h !== H || w !== W) throw new Error(`tile function returned [${t.shape.join(', ')}], expected [1, ${C}, ${H}, ${W}]`);
}

/**
 * ComfyUI's tiled VAE runs three tilings (tall, wide and square tiles) and averages them so that no seam
 * sits at the same place in all three. `shapes` lists [tileH, tileW] per pass, in ComfyUI's order.
 */
export async function tiledScaleAveraged(
  input: Nchw,
  fn: (tile: Nchw) => Promise<Nchw>,
  shapes: Array<[number, number]>,
  spec: Omit<TileSpec, 'tileH' | 'tileW'>,
): Promise<Nchw> {
  let sum: Nchw | undefined;
  for (const [tileH, tileW] of shapes) {
    const r = await tiledScale(input, fn, { ...spec, tileH, tileW });
    if (!sum) sum = r;
    else for (let i = 0; i < sum.data.length; i++) sum.data[i] = Math.fround(sum.data[i]! + r.data[i]!);
  }
  if (!sum) throw new Error('tiledScaleAveraged needs at least one tile shape');
  for (let i = 0; i < sum.data.length; i++) sum.data[i] = sum.data[i]! / shapes.length;
  return sum;
}
