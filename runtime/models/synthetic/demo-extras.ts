import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import sharp from 'sharp';
import { unetKeyShapes, type UnetArch } from '../../adapters/arch-tables.js';
import { unetDiffusersModulesToLdm } from '../../adapters/keymap.js';
import { writeSafetensors, type TensorToWrite } from '../../safetensors/writer.js';
import { randomFor, writeSyntheticCheckpoint } from './generate.js';

/**
 * The demo's companions for the example workflows: a ControlNet for the demo UNet, an "LCM" LoRA (random,
 * shaped like the real ones: attention and feed-forward layers) and an input image.
 */

/** ControlNet keys for a UNet arch: its input half, the hint block, one zero conv per skip, the middle out. */
export function controlNetKeyShapes(arch: UnetArch, prefix = 'control_model.'): Map<string, number[]> {
  const t = new Map<string, number[]>();
  let skips = 0;
  for (const [k, shape] of unetKeyShapes(arch, '')) {
    if (/^(time_embed|label_emb|middle_block)\./.test(k)) t.set(prefix + k, shape);
    const m = /^input_blocks\.(\d+)\./.exec(k);
    if (m) {
      t.set(prefix + k, shape);
      skips = Math.max(skips, Number(m[1]) + 1);
    }
  }
  const hint: Array<[number, number]> = [[3, 16], [16, 16], [16, 32], [32, 32], [32, 96], [96, 96], [96, 256], [256, arch.modelChannels]];
  hint.forEach(([cin, cout], i) => {
    t.set(`${prefix}input_hint_block.${2 * i}.weight`, [cout, cin, 3, 3]);
    t.set(`${prefix}input_hint_block.${2 * i}.bias`, [cout]);
  });
  for (let i = 0; i < skips; i++) {
    const out = unetKeyShapes(arch, '').get(i === 0 ? 'input_blocks.0.0.weight' : `input_blocks.${i}.0.out_layers.3.weight`) ?? unetKeyShapes(arch, '').get(`input_blocks.${i}.0.op.weight`)!;
    const ch = out[0]!;
    t.set(`${prefix}zero_convs.${i}.0.weight`, [ch, ch, 1, 1]);
    t.set(`${prefix}zero_convs.${i}.0.bias`, [ch]);
  }
  const mid = arch.modelChannels * arch.channelMult[arch.channelMult.length - 1]!;
  t.set(`${prefix}middle_block_out.0.weight`, [mid, mid, 1, 1]);
  t.set(`${prefix}middle_block_out.0.bias`, [mid]);
  return t;
}

export function writeDemoControlNet(path: string, arch: UnetArch, seed: number, metadata: Record<string, string>): void {
  mkdirSync(dirname(path), { recursive: true });
  writeSyntheticCheckpoint(path, controlNetKeyShapes(arch), {
    seed,
    metadata,
    // Real ControlNets start from zero convs; small random ones make the demo's control visible.
    values: (name, shape) => (/zero_convs|middle_block_out/.test(name) ? randomFor(name, seed).fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)), 0, 0.05) : undefined),
  });
}

/**
 * A kohya LoRA, random. `attention` (the demo's): the attention projections and feed-forward layers; `all`: every
 * linear and conv of the UNet's blocks as the released LCM-LoRAs have (resnets, attention, resamplers, time
 * embedding), conv LoRAs as a k×k down and a 1×1 up.
 */
export function writeDemoLcmLora(path: string, arch: UnetArch, seed: number, metadata: Record<string, string>, opts: { rank?: number; layers?: 'attention' | 'all' } = {}): void {
  const shapes = unetKeyShapes(arch);
  const rank = opts.rank ?? 4;
  const pick = opts.layers === 'all' ? /(attentions|resnets|samplers)\.|^time_embedding\./ : /attn[12]\.to_(q|k|v|out\.0)$|ff\.net\.(0\.proj|2)$/;
  const tensors: Record<string, TensorToWrite> = {};
  for (const [diffusers, ldm] of unetDiffusersModulesToLdm(arch)) {
    if (!pick.test(diffusers)) continue;
    const shape = shapes.get(`model.diffusion_model.${ldm}.weight`);
    if (!shape || (shape.length !== 2 && shape.length !== 4)) continue;
    const [out, inF] = shape as [number, number];
    const k = shape.length === 4 ? shape.slice(2) : [];
    const fanIn = inF * (k.length ? k[0]! * k[1]! : 1);
    const kohya = `lora_unet_${diffusers.replace(/\./g, '_')}`;
    tensors[`${kohya}.lora_down.weight`] = { dtype: 'F16', shape: [rank, inF, ...k], data: randomFor(`${kohya}.down`, seed).fillNormal(new Float32Array(rank * fanIn), 0, 1 / Math.sqrt(fanIn)) };
    tensors[`${kohya}.lora_up.weight`] = { dtype: 'F16', shape: k.length ? [out, rank, 1, 1] : [out, rank], data: randomFor(`${kohya}.up`, seed).fillNormal(new Float32Array(out * rank), 0, 0.2 / Math.sqrt(rank)) };
    tensors[`${kohya}.alpha`] = { dtype: 'F32', shape: [], data: [rank] };
  }
  mkdirSync(dirname(path), { recursive: true });
  writeSafetensors(path, tensors, metadata);
}

/** A 256² test card: soft colour gradients and a few discs, good for img2img and as a ControlNet hint. */
export async function writeDemoInputImage(path: string): Promise<void> {
  const W = 256;
  const H = 256;
  const px = Buffer.alloc(W * H * 3);
  const discs = [
    [80, 90, 50, [230, 70, 60]],
    [170, 150, 60, [60, 120, 220]],
    [120, 200, 35, [250, 210, 80]],
  ] as const;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let rgb = [40 + (x * 120) / W, 60 + (y * 100) / H, 120];
      for (const [cx, cy, r, c] of discs) if ((x - cx) ** 2 + (y - cy) ** 2 < r * r) rgb = [...c];
      px.set(rgb.map(Math.round), (y * W + x) * 3);
    }
  }
  mkdirSync(dirname(path), { recursive: true });
  await sharp(px, { raw: { width: W, height: H, channels: 3 } }).png().toFile(path);
}
