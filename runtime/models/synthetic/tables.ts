import { unetKeyShapes, type UnetArch } from '../../adapters/arch-tables.js';

/**
 * Key→shape tables of the non-UNet parts of an SD1.x single-file checkpoint, generated from their configs.
 * With the UNet table from adapters/arch-tables they describe a whole checkpoint, so tests and benches can
 * write real-layout files of any size.
 */

export interface VaeArch {
  ch: number;
  chMult: number[];
  numResBlocks: number;
  zChannels: number;
}

export interface ClipArch {
  hidden: number;
  layers: number;
  intermediate: number;
  vocab: number;
  positions: number;
}

export const SD15_VAE: VaeArch = { ch: 128, chMult: [1, 2, 4, 4], numResBlocks: 2, zChannels: 4 };
export const SD15_CLIP: ClipArch = { hidden: 768, layers: 12, intermediate: 3072, vocab: 49408, positions: 77 };

type Table = Map<string, number[]>;

function resnet(t: Table, p: string, cin: number, cout: number): void {
  t.set(`${p}.norm1.weight`, [cin]);
  t.set(`${p}.norm1.bias`, [cin]);
  t.set(`${p}.conv1.weight`, [cout, cin, 3, 3]);
  t.set(`${p}.conv1.bias`, [cout]);
  t.set(`${p}.norm2.weight`, [cout]);
  t.set(`${p}.norm2.bias`, [cout]);
  t.set(`${p}.conv2.weight`, [cout, cout, 3, 3]);
  t.set(`${p}.conv2.bias`, [cout]);
  if (cin !== cout) {
    t.set(`${p}.nin_shortcut.weight`, [cout, cin, 1, 1]);
    t.set(`${p}.nin_shortcut.bias`, [cout]);
  }
}

function mid(t: Table, p: string, c: number): void {
  resnet(t, `${p}.block_1`, c, c);
  for (const n of ['norm']) {
    t.set(`${p}.attn_1.${n}.weight`, [c]);
    t.set(`${p}.attn_1.${n}.bias`, [c]);
  }
  for (const n of ['q', 'k', 'v', 'proj_out']) {
    t.set(`${p}.attn_1.${n}.weight`, [c, c, 1, 1]);
    t.set(`${p}.attn_1.${n}.bias`, [c]);
  }
  resnet(t, `${p}.block_2`, c, c);
}

export function vaeKeyShapes(a: VaeArch, prefix = 'first_stage_model.'): Table {
  const t: Table = new Map();
  const p = (k: string) => prefix + k;
  const levels = a.chMult.length;
  t.set(p('encoder.conv_in.weight'), [a.ch, 3, 3, 3]);
  t.set(p('encoder.conv_in.bias'), [a.ch]);
  let cin = a.ch;
  for (let i = 0; i < levels; i++) {
    const cout = a.ch * a.chMult[i]!;
    for (let j = 0; j < a.numResBlocks; j++) {
      resnet(t, p(`encoder.down.${i}.block.${j}`), cin, cout);
      cin = cout;
    }
    if (i !== levels - 1) {
      t.set(p(`encoder.down.${i}.downsample.conv.weight`), [cin, cin, 3, 3]);
      t.set(p(`encoder.down.${i}.downsample.conv.bias`), [cin]);
    }
  }
  mid(t, p('encoder.mid'), cin);
  t.set(p('encoder.norm_out.weight'), [cin]);
  t.set(p('encoder.norm_out.bias'), [cin]);
  t.set(p('encoder.conv_out.weight'), [2 * a.zChannels, cin, 3, 3]);
  t.set(p('encoder.conv_out.bias'), [2 * a.zChannels]);
  t.set(p('quant_conv.weight'), [2 * a.zChannels, 2 * a.zChannels, 1, 1]);
  t.set(p('quant_conv.bias'), [2 * a.zChannels]);
  t.set(p('post_quant_conv.weight'), [a.zChannels, a.zChannels, 1, 1]);
  t.set(p('post_quant_conv.bias'), [a.zChannels]);
  let c = a.ch * a.chMult[levels - 1]!;
  t.set(p('decoder.conv_in.weight'), [c, a.zChannels, 3, 3]);
  t.set(p('decoder.conv_in.bias'), [c]);
  mid(t, p('decoder.mid'), c);
  for (let i = levels - 1; i >= 0; i--) {
    const cout = a.ch * a.chMult[i]!;
    for (let j = 0; j < a.numResBlocks + 1; j++) {
      resnet(t, p(`decoder.up.${i}.block.${j}`), c, cout);
      c = cout;
    }
    if (i !== 0) {
      t.set(p(`decoder.up.${i}.upsample.conv.weight`), [c, c, 3, 3]);
      t.set(p(`decoder.up.${i}.upsample.conv.bias`), [c]);
    }
  }
  t.set(p('decoder.norm_out.weight'), [c]);
  t.set(p('decoder.norm_out.bias'), [c]);
  t.set(p('decoder.conv_out.weight'), [3, c, 3, 3]);
  t.set(p('decoder.conv_out.bias'), [3]);
  return t;
}

export function clipKeyShapes(a: ClipArch, prefix = 'cond_stage_model.transformer.text_model.'): Table {
  const t: Table = new Map();
  const p = (k: string) => prefix + k;
  t.set(p('embeddings.token_embedding.weight'), [a.vocab, a.hidden]);
  t.set(p('embeddings.position_embedding.weight'), [a.positions, a.hidden]);
  for (let l = 0; l < a.layers; l++) {
    const L = `encoder.layers.${l}`;
    for (const n of ['layer_norm1', 'layer_norm2']) {
      t.set(p(`${L}.${n}.weight`), [a.hidden]);
      t.set(p(`${L}.${n}.bias`), [a.hidden]);
    }
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      t.set(p(`${L}.self_attn.${n}.weight`), [a.hidden, a.hidden]);
      t.set(p(`${L}.self_attn.${n}.bias`), [a.hidden]);
    }
    t.set(p(`${L}.mlp.fc1.weight`), [a.intermediate, a.hidden]);
    t.set(p(`${L}.mlp.fc1.bias`), [a.intermediate]);
    t.set(p(`${L}.mlp.fc2.weight`), [a.hidden, a.intermediate]);
    t.set(p(`${L}.mlp.fc2.bias`), [a.hidden]);
  }
  t.set(p('final_layer_norm.weight'), [a.hidden]);
  t.set(p('final_layer_norm.bias'), [a.hidden]);
  return t;
}

export interface Sd1Arch {
  unet: UnetArch;
  vae: VaeArch;
  clip: ClipArch;
}

/** The whole SD1.x checkpoint table: UNet + VAE + CLIP in the original single-file key layout. */
export function sd1CheckpointKeyShapes(a: Sd1Arch): Table {
  return new Map([...unetKeyShapes(a.unet), ...vaeKeyShapes(a.vae), ...clipKeyShapes(a.clip)]);
}
