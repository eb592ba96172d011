/**
 * T2I-Adapter features as the UNet's input-side control (ComfyUI's control['input']): each active adapter's
 * features, times its strength, summed over chained adapters, keyed by the input block they join. A feature
 * whose shape does not match that block's output is skipped, as ComfyUI skips it with a warning.
 */
import type { TensorData } from '../graph/session.js';
import { resizeHint } from '../image/resize.js';
import { T2IAdapter } from '../models/t2i/adapter.js';
import type { UnetConfig } from '../models/unet/config.js';
import { skipChannels } from '../models/unet/unet.js';
import type { ActiveControl } from '../sampling/types.js';

export const isT2IControl = (c: ActiveControl): boolean => c.controlNet instanceof T2IAdapter;

/** Spatial size of input block i's output for a latent H x W (stride-2 downsamplers: ceil). */
function blockSize(cfg: UnetConfig, i: number, H: number, W: number): [number, number] {
  let size: [number, number] = [H, W];
  for (let k = 0; k <= i; k++) if (cfg.inputBlocks[k]!.kind === 'down') size = [Math.ceil(size[0] / 2), Math.ceil(size[1] / 2)];
  return size;
}

export async function t2iInputControl(controls: ActiveControl[], xDims: readonly number[], cfg: UnetConfig): Promise<Map<number, TensorData>> {
  const [B, , H, W] = xDims as [number, number, number, number];
  const acc = new Map<number, { data: Float32Array; dims: number[] }>();
  for (const c of controls) {
    const adapter = c.controlNet as T2IAdapter;
    // Per-item hints are identical copies when broadcast; the features of item 0 serve every item then.
    const sized = resizeHint(c.hint, c.hintShape, H * 8, W * 8);
    const feats = await adapter.features(sized.data, sized.shape);
    feats.forEach((f, level) => {
      const block = T2IAdapter.targetBlock(level);
      if (block >= cfg.inputBlocks.length) return;
      const [fb, fc, fh, fw] = f.dims as [number, number, number, number];
      const [bh, bw] = blockSize(cfg, block, H, W);
      if (fc !== skipChannels(cfg, block) || fh !== bh || fw !== bw || (fb !== 1 && fb !== B)) return;
      const per = fc * fh * fw;
      let a = acc.get(block);
      if (!a) {
        a = { data: new Float32Array(B * per), dims: [B, fc, fh, fw] };
        acc.set(block, a);
      }
      const src = f.data as Float32Array;
      for (let b = 0; b < B; b++) {
        const off = fb === 1 ? 0 : b * per;
        for (let i = 0; i < per; i++) a.data[b * per + i] = a.data[b * per + i]! + src[off + i]! * c.strength;
      }
    });
  }
  return new Map([...acc].map(([k, v]) => [k, { data: v.data, dims: v.dims }]));
}
