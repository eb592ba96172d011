import { describe, expect, it } from 'vitest';
import { SD15_UNET, SDXL_UNET, inferUnetArch, keyShapesOf, sd15KeyShapes, sdxlKeyShapes } from '../../runtime/adapters/arch-tables.js';
import {
  diffusersUnetKey,
  textEncoderModules,
  textEncoderTarget,
  unetDiffusersModulesToLdm,
  unetDiffusersToLdm,
} from '../../runtime/adapters/keymap.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import { readJson, shared } from './helpers.js';

describe('diffusers → LDM UNet names', () => {
  const sd15 = unetDiffusersModulesToLdm(SD15_UNET);
  const sdxl = unetDiffusersModulesToLdm(SDXL_UNET);

  it('SD1.5 resnets, samplers, attentions and top-level layers', () => {
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 2; j++) {
        expect(sd15.get(`down_blocks.${i}.resnets.${j}.norm1`)).toBe(`input_blocks.${3 * i + j + 1}.0.in_layers.0`);
        expect(sd15.get(`down_blocks.${i}.resnets.${j}.norm2`)).toBe(`input_blocks.${3 * i + j + 1}.0.out_layers.0`);
        expect(sd15.get(`down_blocks.${i}.resnets.${j}.conv2`)).toBe(`input_blocks.${3 * i + j + 1}.0.out_layers.3`);
      }
      for (let j = 0; j < 3; j++) {
        expect(sd15.get(`up_blocks.${i}.resnets.${j}.norm1`)).toBe(`output_blocks.${3 * i + j}.0.in_layers.0`);
      }
    }
    for (let i = 0; i < 3; i++) expect(sd15.get(`down_blocks.${i}.downsamplers.0.conv`)).toBe(`input_blocks.${3 * (i + 1)}.0.op`);
    expect(sd15.has('down_blocks.3.downsamplers.0.conv')).toBe(false);
    expect(sd15.get('up_blocks.0.upsamplers.0.conv')).toBe('output_blocks.2.1.conv');
    expect(sd15.get('up_blocks.1.upsamplers.0.conv')).toBe('output_blocks.5.2.conv');
    expect(sd15.get('up_blocks.2.upsamplers.0.conv')).toBe('output_blocks.8.2.conv');
    expect(sd15.has('up_blocks.3.upsamplers.0.conv')).toBe(false);
    expect(sd15.get('down_blocks.1.resnets.0.conv_shortcut')).toBe('input_blocks.4.0.skip_connection');
    expect(sd15.get('down_blocks.0.resnets.1.time_emb_proj')).toBe('input_blocks.2.0.emb_layers.1');
    expect(sd15.get('down_blocks.2.attentions.1.transformer_blocks.0.attn1.to_out.0')).toBe(
      'input_blocks.8.1.transformer_blocks.0.attn1.to_out.0',
    );
    expect(sd15.get('up_blocks.1.attentions.2.proj_out')).toBe('output_blocks.5.1.proj_out');
    expect(sd15.has('up_blocks.0.attentions.0.proj_in')).toBe(false);
    expect(sd15.get('mid_block.resnets.0.norm1')).toBe('middle_block.0.in_layers.0');
    expect(sd15.get('mid_block.resnets.1.conv1')).toBe('middle_block.2.in_layers.2');
    expect(sd15.get('mid_block.attentions.0.transformer_blocks.0.ff.net.2')).toBe('middle_block.1.transformer_blocks.0.ff.net.2');
    expect(sd15.get('conv_in')).toBe('input_blocks.0.0');
    expect(sd15.get('conv_norm_out')).toBe('out.0');
    expect(sd15.get('conv_out')).toBe('out.2');
    expect(sd15.get('time_embedding.linear_1')).toBe('time_embed.0');
    expect(sd15.get('time_embedding.linear_2')).toBe('time_embed.2');
  });

  it('SDXL samplers, attention placement and the label embedding', () => {
    expect(sdxl.get('down_blocks.0.downsamplers.0.conv')).toBe('input_blocks.3.0.op');
    expect(sdxl.get('down_blocks.1.downsamplers.0.conv')).toBe('input_blocks.6.0.op');
    expect(sdxl.has('down_blocks.2.downsamplers.0.conv')).toBe(false);
    expect(sdxl.get('up_blocks.0.upsamplers.0.conv')).toBe('output_blocks.2.2.conv');
    expect(sdxl.get('up_blocks.1.upsamplers.0.conv')).toBe('output_blocks.5.2.conv');
    expect(sdxl.has('up_blocks.2.upsamplers.0.conv')).toBe(false);
    expect(sdxl.has('down_blocks.0.attentions.0.proj_in')).toBe(false);
    expect(sdxl.get('down_blocks.2.attentions.1.transformer_blocks.9.attn2.to_k')).toBe('input_blocks.8.1.transformer_blocks.9.attn2.to_k');
    expect(sdxl.get('up_blocks.2.resnets.2.norm2')).toBe('output_blocks.8.0.out_layers.0');
    expect(sdxl.get('add_embedding.linear_1')).toBe('label_emb.0.0');
    expect(sdxl.get('add_embedding.linear_2')).toBe('label_emb.0.2');
  });

  it('covers every LDM tensor exactly once (plus the class_embedding alias)', () => {
    for (const [arch, table] of [
      [SD15_UNET, sd15KeyShapes()],
      [SDXL_UNET, sdxlKeyShapes()],
    ] as const) {
      const map = unetDiffusersToLdm(arch);
      const targets = [...map].filter(([d]) => !d.startsWith('class_embedding.')).map(([, l]) => `model.diffusion_model.${l}`);
      expect(new Set(targets).size).toBe(targets.length);
      expect(new Set(targets)).toEqual(new Set(table.keys()));
    }
    expect(diffusersUnetKey(SD15_UNET, 'down_blocks.0.resnets.0.norm1.bias')).toBe('model.diffusion_model.input_blocks.1.0.in_layers.0.bias');
    expect(diffusersUnetKey(SD15_UNET, 'down_blocks.9.resnets.0.norm1.bias')).toBeUndefined();
  });
});

describe('conformance name tables', () => {
  for (const [name, ckpt, caseFile] of [
    ['SD1.5', 'conformance/models/tiny-sd15-a.safetensors', 'conformance/lora-resadapter/case.json'],
    ['SDXL', 'conformance-sdxl/models/tiny-sdxl-a.safetensors', 'conformance-sdxl/lora-resadapter-sdxl/case.json'],
  ] as const) {
    it(`${name}: diffusers_to_ldm table of the tiny ResAdapter case`, () => {
      const arch = inferUnetArch(keyShapesOf(SafetensorsFile.open(shared(ckpt))))!;
      const table: Record<string, string> = readJson(shared(caseFile)).models.resadapter.diffusers_to_ldm;
      const map = unetDiffusersToLdm(arch);
      expect(Object.keys(table).length).toBeGreaterThan(10);
      for (const [d, l] of Object.entries(table)) expect(map.get(d), d).toBe(l);
    });
  }

  it('SD1.x text encoder: HF CLIP names → cond_stage_model keys', () => {
    const table = keyShapesOf(SafetensorsFile.open(shared('conformance/models/tiny-sd15-a.safetensors')));
    const mods = textEncoderModules(table);
    expect(mods).toHaveLength(12); // 2 layers × q, k, v, out, fc1, fc2
    expect(mods.every((m) => m.slot === 'te1' && !m.rows)).toBe(true);
    expect(textEncoderTarget(table, 'te1', 'text_model.encoder.layers.1.self_attn.q_proj')?.target).toBe(
      'cond_stage_model.transformer.text_model.encoder.layers.1.self_attn.q_proj.weight',
    );
    expect(textEncoderTarget(table, 'te1', 'text_model.encoder.layers.0.mlp.fc2')?.target).toBe(
      'cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc2.weight',
    );
    expect(textEncoderTarget(table, 'te2', 'text_model.encoder.layers.0.mlp.fc2')).toBeUndefined();
  });

  it('SDXL text encoders: CLIP-L as te1, OpenCLIP bigG as te2 with q/k/v rows of in_proj_weight', () => {
    const table = keyShapesOf(SafetensorsFile.open(shared('conformance-sdxl/models/tiny-sdxl-a.safetensors')));
    expect(textEncoderTarget(table, 'te1', 'text_model.encoder.layers.2.self_attn.out_proj')?.target).toBe(
      'conditioner.embedders.0.transformer.text_model.encoder.layers.2.self_attn.out_proj.weight',
    );
    const k = textEncoderTarget(table, 'te2', 'text_model.encoder.layers.3.self_attn.k_proj')!;
    expect(k.target).toBe('conditioner.embedders.1.model.transformer.resblocks.3.attn.in_proj_weight');
    expect(k.rows).toEqual({ start: 32, count: 32 });
    expect(textEncoderTarget(table, 'te2', 'text_model.encoder.layers.0.mlp.fc1')?.target).toBe(
      'conditioner.embedders.1.model.transformer.resblocks.0.mlp.c_fc.weight',
    );
    expect(textEncoderTarget(table, 'te2', 'text_model.encoder.layers.0.self_attn.out_proj')?.target).toBe(
      'conditioner.embedders.1.model.transformer.resblocks.0.attn.out_proj.weight',
    );
    expect(textEncoderModules(table).filter((m) => m.slot === 'te2')).toHaveLength(24);
  });
});
