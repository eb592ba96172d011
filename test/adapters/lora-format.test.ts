import { describe, expect, it } from 'vitest';
import { keyShapesOf, sd15KeyShapes, sdxlKeyShapes } from '../../runtime/adapters/arch-tables.js';
import { LoraError, parseLora } from '../../runtime/adapters/lora-format.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import { memSource, readJson, shared } from './helpers.js';

const conv = (name: string, r: number, cin: number, cout: number, alpha?: number) => ({
  [`${name}.lora_down.weight`]: [r, cin, 3, 3],
  [`${name}.lora_up.weight`]: [cout, r, 1, 1],
  ...(alpha === undefined ? {} : { [`${name}.alpha`]: { shape: [], data: [alpha] } }),
});

function errorOf(fn: () => unknown): LoraError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(LoraError);
    return e as LoraError;
  }
  throw new Error('expected a LoraError');
}

describe('kohya names on full-size tables', () => {
  const sd15 = sd15KeyShapes();

  it('diffusers-style and LDM-style module names resolve to the same weight', () => {
    const { patches, formats } = parseLora(
      memSource({
        ...conv('lora_unet_down_blocks_0_downsamplers_0_conv', 4, 320, 320, 2),
        ...conv('lora_unet_input_blocks_6_0_op', 4, 640, 640),
        ...conv('lora_unet_up_blocks_0_upsamplers_0_conv', 4, 1280, 1280),
      }),
      sd15,
    );
    expect(formats).toEqual(['kohya']);
    expect(patches.map((p) => p.target)).toEqual([
      'model.diffusion_model.input_blocks.3.0.op.weight',
      'model.diffusion_model.input_blocks.6.0.op.weight',
      'model.diffusion_model.output_blocks.2.1.conv.weight',
    ]);
    expect(patches[0]!.alpha).toBe(2);
    expect(patches[0]!.rank).toBe(4);
    expect(patches[1]!.alpha).toBeUndefined();
    expect(patches.every((p) => p.component === 'unet')).toBe(true);
  });

  it('linear layers, LoCon mid weights and peft / old diffusers names', () => {
    const { patches } = parseLora(
      memSource({
        'lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight': [8, 768],
        'lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight': [640, 8],
        'lora_unet_mid_block_resnets_0_conv1.lora_down.weight': [4, 1280, 1, 1],
        'lora_unet_mid_block_resnets_0_conv1.lora_mid.weight': [4, 4, 3, 3],
        'lora_unet_mid_block_resnets_0_conv1.lora_up.weight': [1280, 4, 1, 1],
        'unet.up_blocks.3.attentions.2.proj_in.lora_A.weight': [2, 320, 1, 1],
        'unet.up_blocks.3.attentions.2.proj_in.lora_B.weight': [320, 2, 1, 1],
        'unet.mid_block.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.down.weight': [2, 1280],
        'unet.mid_block.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.up.weight': [1280, 2],
        'unet.conv_in.lora.down.weight': [2, 4, 3, 3],
        'unet.conv_in.lora.up.weight': [320, 2, 1, 1],
      }),
      sd15,
    );
    const P = 'model.diffusion_model.';
    expect(patches.map((p) => p.target)).toEqual([
      `${P}input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight`,
      `${P}middle_block.0.in_layers.2.weight`,
      `${P}output_blocks.11.1.proj_in.weight`,
      `${P}middle_block.1.transformer_blocks.0.attn1.to_out.0.weight`,
      `${P}input_blocks.0.0.weight`,
    ]);
    expect(patches[1]!.midShape).toEqual([4, 4, 3, 3]);
  });

  it('SDXL: te1/te2 kohya names, fused OpenCLIP rows, label embedding', () => {
    const table = new Map([...sdxlKeyShapes()]);
    table.set('conditioner.embedders.0.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight', [768, 768]);
    table.set('conditioner.embedders.1.model.transformer.resblocks.5.attn.in_proj_weight', [3840, 1280]);
    const { patches } = parseLora(
      memSource({
        'lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight': [4, 768],
        'lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight': [768, 4],
        'lora_te2_text_model_encoder_layers_5_self_attn_v_proj.lora_down.weight': [4, 1280],
        'lora_te2_text_model_encoder_layers_5_self_attn_v_proj.lora_up.weight': [1280, 4],
        'lora_unet_add_embedding_linear_1.lora_down.weight': [4, 2816],
        'lora_unet_add_embedding_linear_1.lora_up.weight': [1280, 4],
      }),
      table,
    );
    expect(patches.map((p) => [p.target, p.component, p.rows])).toEqual([
      ['conditioner.embedders.0.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight', 'clip', undefined],
      ['conditioner.embedders.1.model.transformer.resblocks.5.attn.in_proj_weight', 'clip', { start: 2560, count: 1280 }],
      ['model.diffusion_model.label_emb.0.0.weight', 'unet', undefined],
    ]);
  });
});

describe('errors name the LoRA key', () => {
  const sd15 = sd15KeyShapes();

  it('unknown layer', () => {
    const e = errorOf(() => parseLora(memSource(conv('lora_unet_down_blocks_3_downsamplers_0_conv', 4, 1280, 1280)), sd15));
    expect(e.key).toBe('lora_unet_down_blocks_3_downsamplers_0_conv.lora_down.weight');
    expect(e.message).toContain('lora_unet_down_blocks_3_downsamplers_0_conv');
    expect(e.message).toContain('no UNet layer');
  });

  it('wrong output size, wrong input size, rank mismatch', () => {
    let e = errorOf(() => parseLora(memSource(conv('lora_unet_down_blocks_0_downsamplers_0_conv', 4, 320, 640)), sd15));
    expect(e.key).toBe('lora_unet_down_blocks_0_downsamplers_0_conv.lora_up.weight');
    expect(e.message).toMatch(/640 outputs.*input_blocks\.3\.0\.op\.weight.*320/);
    e = errorOf(() => parseLora(memSource(conv('lora_unet_down_blocks_0_downsamplers_0_conv', 4, 640, 320)), sd15));
    expect(e.key).toBe('lora_unet_down_blocks_0_downsamplers_0_conv.lora_down.weight');
    expect(e.message).toContain('[4, 640, 3, 3]');
    e = errorOf(() =>
      parseLora(
        memSource({
          'lora_unet_conv_in.lora_down.weight': [4, 4, 3, 3],
          'lora_unet_conv_in.lora_up.weight': [320, 8, 1, 1],
        }),
        sd15,
      ),
    );
    expect(e.key).toBe('lora_unet_conv_in.lora_up.weight');
    expect(e.message).toContain('rank 4');
  });

  it('missing half, unknown tensor kinds, non-scalar alpha', () => {
    let e = errorOf(() => parseLora(memSource({ 'lora_unet_conv_in.lora_down.weight': [4, 4, 3, 3] }), sd15));
    expect(e.key).toBe('lora_unet_conv_in.lora_down.weight');
    expect(e.message).toContain('no up');
    e = errorOf(() => parseLora(memSource({ 'lora_unet_conv_in.hada_w1_a': [4, 4] }), sd15));
    expect(e.key).toBe('lora_unet_conv_in.hada_w1_a');
    e = errorOf(() =>
      parseLora(
        memSource({
          'lora_unet_conv_in.lora_down.weight': [4, 4, 3, 3],
          'lora_unet_conv_in.lora_up.weight': [320, 4, 1, 1],
          'lora_unet_conv_in.alpha': [2],
        }),
        sd15,
      ),
    );
    expect(e.key).toBe('lora_unet_conv_in.alpha');
    e = errorOf(() => parseLora(memSource(conv('lora_te_text_model_encoder_layers_0_mlp_fc1', 4, 768, 3072)), sd15));
    expect(e.message).toContain('text-encoder');
  });
});

describe('conformance LoRA files', () => {
  const tiny = () => keyShapesOf(SafetensorsFile.open(shared('conformance/models/tiny-sd15-a.safetensors')));

  it('lora-kohya: every module lands on the layer case.json names', () => {
    const c = readJson(shared('conformance/lora-kohya/case.json'));
    const expected: Record<string, string> = c.models.lora.key_to_ldm;
    const { patches, formats } = parseLora(shared('conformance/models/lora-kohya-a/lora.safetensors'), tiny());
    expect(formats).toEqual(['kohya']);
    expect(patches).toHaveLength(Object.keys(expected).length);
    for (const p of patches) {
      const want = expected[p.source]!
        .replace(/^diffusion_model\./, 'model.diffusion_model.')
        .replace(/^clip_l\.transformer\./, 'cond_stage_model.transformer.');
      expect(p.target, p.source).toBe(want);
      expect(p.component).toBe(p.source.startsWith('lora_te_') ? 'clip' : 'unet');
    }
    const withAlpha = patches.filter((p) => p.alpha !== undefined);
    expect(withAlpha.length).toBe(102);
    expect(patches.find((p) => p.source === 'lora_unet_mid_block_resnets_1_time_emb_proj')!.alpha).toBeUndefined();
  });

  it('lora-peft: unet.<diffusers>.lora_A/lora_B, no alpha', () => {
    const { patches, formats } = parseLora(shared('conformance/models/lora-peft-a/pytorch_lora_weights.safetensors'), tiny());
    expect(formats).toEqual(['peft']);
    expect(patches.map((p) => [p.target, p.alpha, p.rank])).toEqual([
      ['model.diffusion_model.input_blocks.2.0.op.weight', undefined, 4],
      ['model.diffusion_model.output_blocks.1.2.conv.weight', undefined, 4],
    ]);
  });

  it('alpha stored with shape [1] (tiny SD1.5) and 0-d (tiny SDXL) reads as a scalar', () => {
    const a = parseLora(shared('conformance/models/resadapter-a/pytorch_lora_weights.safetensors'), tiny());
    expect(a.patches.map((p) => p.alpha)).toEqual([2, 2]);
    const xl = keyShapesOf(SafetensorsFile.open(shared('conformance-sdxl/models/tiny-sdxl-a.safetensors')));
    const b = parseLora(shared('conformance-sdxl/models/resadapter-sdxl-a/pytorch_lora_weights.safetensors'), xl);
    expect(b.patches.map((p) => p.alpha)).toEqual([2, 2, 2, 2]);
  });
});
