/**
 * Pillow's LANCZOS resize as ComfyUI uses it for images: values truncated to 8 bits (clip(255x)), 3-lobe
 * Lanczos with the support widened by the downscale factor, 22-bit fixed-point coefficients, horizontal
 * pass then vertical pass, each rounded and clipped to 8 bits; the result is /255.
 */
import type { Tensor4 } from './upscale.js';

const PRECISION_BITS = 32 - 8 - 2;

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

function lanczos(x: number): number {
  return x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
}

interface Coeffs {
  bounds: Int32Array;
  k: Int32Array;
  ksize: number;
}

/** precompute_coeffs + normalize_coeffs_8bpc for one axis. */
function coefficients(inSize: number, outSize: number): Coeffs {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 3 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const k = new Int32Array(outSize * ksize);
  const pre = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = lanczos((x + xmin - center + 0.5) * ss);
      pre[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? pre[x]! / ww : pre[x]!;
      k[xx * ksize + x] = Math.trunc(v * (1 << PRECISION_BITS) + (v < 0 ? -0.5 : 0.5));
    }
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = xmax;
  }
  return { bounds, k, ksize };
}

function clip8(v: number): number {
  if (v >= 2 ** (PRECISION_BITS + 8)) return 255;
  if (v <= 0) return 0;
  return Math.floor(v / 2 ** PRECISION_BITS);
}

/** Resamples one 8-bit plane along x (stride 1) or y. */
function resamplePlane(src: Uint8Array, w: number, h: number, outW: number, outH: number, horizontal: boolean): Uint8Array {
  const c = coefficients(horizontal ? w : h, horizontal ? outW : outH);
  const out = new Uint8Array(outW * outH);
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      const o = horizontal ? x : y;
      const xmin = c.bounds[2 * o]!;
      const xmax = c.bounds[2 * o + 1]!;
      let ss = 1 << (PRECISION_BITS - 1);
      for (let t = 0; t < xmax; t++) {
        const v = horizontal ? src[y * w + xmin + t]! : src[(xmin + t) * w + x]!;
        ss += v * c.k[o * c.ksize + t]!;
      }
      out[y * outW + x] = clip8(ss);
    }
  }
  return out;
}

export function lanczosResize(t: Tensor4, width: number, height: number): Tensor4 {
  const [B, C, H, W] = t.shape;
  const out = new Float32Array(B * C * height * width);
  for (let p = 0; p < B * C; p++) {
    let plane: Uint8Array = new Uint8Array(H * W);
    for (let i = 0; i < H * W; i++) {
      const v = Math.fround(255 * t.data[p * H * W + i]!);
      plane[i] = v <= 0 || Number.isNaN(v) ? 0 : v >= 255 ? 255 : Math.trunc(v);
    }
    let w = W;
    if (width !== W) {
      plane = resamplePlane(plane, W, H, width, H, true);
      w = width;
    }
    if (height !== H) plane = resamplePlane(plane, w, H, w, height, false);
    for (let i = 0; i < width * height; i++) out[p * width * height + i] = Math.fround(plane[i]! / 255);
  }
  return { data: out, shape: [B, C, height, width] };
}
