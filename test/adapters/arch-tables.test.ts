import { describe, expect, it } from 'vitest';
import {
  SD15_UNET,
  SDXL_UNET,
  UNET_PREFIX,
  inferUnetArch,
  keyShapesOf,
  sd15KeyShapes,
  sdxlKeyShapes,
  unetKeyShapes,
} from '../../runtime/adapters/arch-tables.js';
import { SafetensorsFile } from '../../runtime/safetensors/index.js';
import { readJson, shared } from './helpers.js';

const P = UNET_PREFIX;

describe('full-size UNet tables', () => {
  it('SD1.5 has the 686 UNet tensors of v1-5 checkpoints with their shapes', () => {
    const t = sd15KeyShapes();
    expect(t.size).toBe(686);
    expect(t.get(`${P}input_blocks.0.0.weight`)).toEqual([320, 4, 3, 3]);
    expect(t.get(`${P}time_embed.0.weight`)).toEqual([1280, 320]);
    expect(t.get(`${P}input_blocks.3.0.op.weight`)).toEqual([320, 320, 3, 3]);
    expect(t.get(`${P}input_blocks.6.0.op.weight`)).toEqual([640, 640, 3, 3]);
    expect(t.get(`${P}input_blocks.9.0.op.weight`)).toEqual([1280, 1280, 3, 3]);
    expect(t.has(`${P}input_blocks.12.0.op.weight`)).toBe(false);
    expect(t.get(`${P}input_blocks.4.0.skip_connection.weight`)).toEqual([640, 320, 1, 1]);
    expect(t.get(`${P}input_blocks.1.1.proj_in.weight`)).toEqual([320, 320, 1, 1]);
    expect(t.get(`${P}input_blocks.7.1.transformer_blocks.0.attn2.to_k.weight`)).toEqual([1280, 768]);
    expect(t.get(`${P}input_blocks.7.1.transformer_blocks.0.ff.net.0.proj.weight`)).toEqual([10240, 1280]);
    expect(t.has(`${P}input_blocks.10.1.norm.weight`)).toBe(false);
    expect(t.get(`${P}middle_block.1.proj_out.weight`)).toEqual([1280, 1280, 1, 1]);
    expect(t.get(`${P}output_blocks.0.0.in_layers.0.weight`)).toEqual([2560]);
    expect(t.get(`${P}output_blocks.2.1.conv.weight`)).toEqual([1280, 1280, 3, 3]);
    expect(t.get(`${P}output_blocks.5.2.conv.weight`)).toEqual([1280, 1280, 3, 3]);
    expect(t.get(`${P}output_blocks.8.2.conv.weight`)).toEqual([640, 640, 3, 3]);
    expect(t.get(`${P}output_blocks.11.0.in_layers.0.weight`)).toEqual([640]);
    expect(t.get(`${P}out.2.weight`)).toEqual([4, 320, 3, 3]);
    expect([...t.keys()].some((k) => k.includes('label_emb'))).toBe(false);
    // 22 resnets × (norm1, norm2) × (weight, bias): what a ResAdapter norm file replaces.
    expect([...t.keys()].filter((k) => /\.(in|out)_layers\.0\./.test(k))).toHaveLength(88);
  });

  it('SDXL has the 1680 UNet tensors of sd_xl_base with their shapes', () => {
    const t = sdxlKeyShapes();
    expect(t.size).toBe(1680);
    expect(t.get(`${P}label_emb.0.0.weight`)).toEqual([1280, 2816]);
    expect(t.get(`${P}label_emb.0.2.weight`)).toEqual([1280, 1280]);
    expect(t.has(`${P}input_blocks.1.1.norm.weight`)).toBe(false);
    expect(t.get(`${P}input_blocks.3.0.op.weight`)).toEqual([320, 320, 3, 3]);
    expect(t.get(`${P}input_blocks.6.0.op.weight`)).toEqual([640, 640, 3, 3]);
    expect(t.has(`${P}input_blocks.9.0.op.weight`)).toBe(false);
    expect(t.get(`${P}input_blocks.4.1.proj_in.weight`)).toEqual([640, 640]);
    expect(t.has(`${P}input_blocks.4.1.transformer_blocks.1.attn1.to_q.weight`)).toBe(true);
    expect(t.has(`${P}input_blocks.7.1.transformer_blocks.9.attn1.to_q.weight`)).toBe(true);
    expect(t.get(`${P}input_blocks.7.1.transformer_blocks.0.attn2.to_v.weight`)).toEqual([1280, 2048]);
    expect(t.has(`${P}middle_block.1.transformer_blocks.9.norm3.weight`)).toBe(true);
    expect(t.get(`${P}output_blocks.2.2.conv.weight`)).toEqual([1280, 1280, 3, 3]);
    expect(t.get(`${P}output_blocks.5.2.conv.weight`)).toEqual([640, 640, 3, 3]);
    expect(t.has(`${P}output_blocks.6.1.norm.weight`)).toBe(false);
    expect(t.get(`${P}output_blocks.8.0.in_layers.0.weight`)).toEqual([640]);
    expect([...t.keys()].filter((k) => /\.(in|out)_layers\.0\./.test(k))).toHaveLength(68);
  });

  it('inferring the architecture from a generated table gives the config back', () => {
    expect(inferUnetArch(sd15KeyShapes())).toEqual(SD15_UNET);
    expect(inferUnetArch(sdxlKeyShapes())).toEqual(SDXL_UNET);
    expect(inferUnetArch(new Map([['foo', [1]]]))).toBeUndefined();
  });
});

describe('tiny conformance checkpoints', () => {
  const cases = [
    ['SD1.5', 'conformance/models/tiny-sd15-a.safetensors', 'conformance/lora-resadapter/case.json'],
    ['SDXL', 'conformance-sdxl/models/tiny-sdxl-a.safetensors', 'conformance-sdxl/lora-resadapter-sdxl/case.json'],
  ] as const;
  for (const [name, file, caseFile] of cases) {
    it(`${name}: the inferred architecture regenerates exactly the checkpoint's UNet keys and shapes`, () => {
      const table = keyShapesOf(SafetensorsFile.open(shared(file)));
      const arch = inferUnetArch(table)!;
      const cfg = readJson(shared(caseFile)).models.checkpoint.unet_config_comfy;
      expect(arch.modelChannels).toBe(cfg.model_channels);
      expect(arch.channelMult).toEqual(cfg.channel_mult);
      expect(arch.numResBlocks).toEqual(cfg.num_res_blocks);
      expect(arch.transformerDepthOutput).toEqual(cfg.transformer_depth_output);
      expect(arch.transformerDepthMiddle).toBe(cfg.transformer_depth_middle);
      expect(arch.contextDim).toBe(cfg.context_dim);
      expect(arch.useLinearInTransformer).toBe(cfg.use_linear_in_transformer);
      expect(arch.admInChannels).toBe(cfg.adm_in_channels);
      const generated = unetKeyShapes(arch);
      const stored = new Map([...table].filter(([k]) => k.startsWith(P)));
      expect(new Set(generated.keys())).toEqual(new Set(stored.keys()));
      for (const [k, s] of generated) expect(s, k).toEqual(stored.get(k));
    });
  }
});
