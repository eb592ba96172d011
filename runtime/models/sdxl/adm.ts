/**
 * SDXL's size conditioning: the label ("adm") vector y = [pooled | E(h) | E(w) | E(crop_h) | E(crop_w) |
 * E(target_h) | E(target_w)], as model_base.SDXL.encode_adm builds it.
 */

/** What CLIPTextEncodeSDXL stores on a conditioning; ids are in pixels. */
export interface SdxlSizes {
  width: number;
  height: number;
  cropW: number;
  cropH: number;
  targetWidth: number;
  targetHeight: number;
}

/** Order of the size ids in y: height before width, crop_h before crop_w. */
export const SIZE_IDS = ['height', 'width', 'cropH', 'cropW', 'targetHeight', 'targetWidth'] as const satisfies ReadonlyArray<keyof SdxlSizes>;

/** Width of one size id's Fourier embedding. */
export const SIZE_EMBED_DIM = 256;

/**
 * ComfyUI derives missing sizes from the latent with a hard-coded factor 8, whatever the VAE's real
 * downscale (comfy/samplers.py encode_model_conds).
 */
export const LATENT_TO_PIXELS = 8;

const f = Math.fround;

/** freqs of timestep_embedding, rounded where float32 torch rounds: exp(f32(f32(-ln 1e4) * i) / half). */
function fourierFreqs(dim: number, maxPeriod = 10000): Float32Array {
  const half = dim / 2;
  const negLog = f(-Math.log(maxPeriod));
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) out[i] = f(Math.exp(f(f(negLog * i) / half)));
  return out;
}

const FREQS = new Map<number, Float32Array>();

/**
 * timestep_embedding(v, dim) for one value: [cos(v·f), sin(v·f)], cosines first. The products reach
 * thousands of radians, where float32 rounding of v·f moves the result by ~1e-4, so it is rounded like torch.
 */
export function sizeEmbedding(v: number, dim = SIZE_EMBED_DIM): Float32Array {
  if (dim % 2) throw new Error(`size embedding width must be even, got ${dim}`);
  let freqs = FREQS.get(dim);
  if (!freqs) FREQS.set(dim, (freqs = fourierFreqs(dim)));
  const half = dim / 2;
  const fv = f(v);
  const out = new Float32Array(dim);
  for (let i = 0; i < half; i++) {
    const arg = f(fv * freqs[i]!);
    out[i] = Math.cos(arg);
    out[half + i] = Math.sin(arg);
  }
  return out;
}

/** The six ids in y order. */
export function sizeIds(s: SdxlSizes): number[] {
  return SIZE_IDS.map((k) => s[k]);
}

/** The sizes a conditioning without any gets: latent W·8 × H·8, no crop, target = size. */
export function defaultSizesForLatent(latentShape: readonly number[]): SdxlSizes {
  if (latentShape.length < 4) throw new Error(`expected a [B, C, H, W] latent shape, got [${latentShape.join(', ')}]`);
  const width = latentShape[3]! * LATENT_TO_PIXELS;
  const height = latentShape[2]! * LATENT_TO_PIXELS;
  return { width, height, cropW: 0, cropH: 0, targetWidth: width, targetHeight: height };
}

/**
 * encode_adm's fallbacks for a partial set: width/height from the latent, crops 0, targets = width/height.
 * `latentShape` is only needed when width or height is missing.
 */
export function resolveSizes(given: Partial<SdxlSizes> | undefined, latentShape?: readonly number[]): SdxlSizes {
  const g = given ?? {};
  let width = g.width;
  let height = g.height;
  if (width === undefined || height === undefined) {
    if (!latentShape) throw new Error('SDXL sizes: width/height not given and no latent shape to derive them from');
    const d = defaultSizesForLatent(latentShape);
    width ??= d.width;
    height ??= d.height;
  }
  const out: SdxlSizes = {
    width,
    height,
    cropW: g.cropW ?? 0,
    cropH: g.cropH ?? 0,
    targetWidth: g.targetWidth ?? width,
    targetHeight: g.targetHeight ?? height,
  };
  for (const [k, v] of Object.entries(out)) if (!Number.isFinite(v)) throw new Error(`SDXL sizes: ${k} = ${v} is not a number`);
  return out;
}

/** The 6·256 size part of y, shared by every batch row. */
export function sizeEmbeddings(s: SdxlSizes): Float32Array {
  const out = new Float32Array(SIZE_IDS.length * SIZE_EMBED_DIM);
  sizeIds(s).forEach((v, i) => out.set(sizeEmbedding(v), i * SIZE_EMBED_DIM));
  return out;
}

/**
 * y [rows, P + 1536] for pooled rows [rows, P]; every row gets the same sizes. `admInChannels`, when given,
 * is checked so that a wrong pooled width fails here rather than inside the UNet session.
 */
export function sdxlAdm(pooled: Float32Array, pooledDim: number, sizes: SdxlSizes, admInChannels?: number): Float32Array {
  if (pooledDim < 1 || pooled.length % pooledDim !== 0) throw new Error(`pooled output of ${pooled.length} values is not a whole number of ${pooledDim}-wide rows`);
  const sizePart = sizeEmbeddings(sizes);
  const width = pooledDim + sizePart.length;
  if (admInChannels !== undefined && admInChannels !== width) {
    throw new Error(`SDXL y: pooled width ${pooledDim} + ${sizePart.length} size features = ${width}, the UNet takes ${admInChannels}`);
  }
  const rows = pooled.length / pooledDim;
  const out = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) {
    out.set(pooled.subarray(r * pooledDim, (r + 1) * pooledDim), r * width);
    out.set(sizePart, r * width + pooledDim);
  }
  return out;
}
