import { parseLora } from '../../adapters/lora-format.js';
import type { TensorData } from '../../graph/session.js';
import { SDXL_PREFIXES } from '../../models/sdxl/checkpoint.js';
import { checkpointKeyShapes } from '../../pipeline/adapter-loaders.js';
import { PatchedUnet, splitPatches } from '../../pipeline/patched-model.js';
import { concatTextFeatures, patchedSdxlText, withSdxlTextLora, type PatchedSdxlText } from '../../pipeline/patched-text.js';
import type { ConformanceCase } from '../case.js';
import { caseTextEncoder, ids, isSdxlCase } from './sdxl-common.js';
import type { CaseKind } from './types.js';

async function encode(t: PatchedSdxlText, tl: number[], tg: number[], w?: number[]) {
  const l = await t.clipL.encodeTokens([tl], w ? [w] : undefined, { clipSkip: 2 });
  const g = await t.clipG.encodeTokens([tg], w ? [w] : undefined, { clipSkip: 2 });
  const Dl = t.base.clipL.config.hiddenSize;
  const Dg = t.base.clipG.config.hiddenSize;
  return { l: l.cond, g: g.cond, context: concatTextFeatures(l.cond, Dl, g.cond, Dg).data, pooled: g.pooled };
}

/**
 * The merged weight a `weights/<ComfyUI key>` tensor names: ComfyUI's clip_l/clip_g keys use HF names for
 * both encoders; bigG stores q/k/v fused in `attn.in_proj_weight` (rows q;k;v) and the MLP as c_fc/c_proj.
 */
function mergedFor(name: string, t: PatchedSdxlText, unet: PatchedUnet): Float32Array | undefined {
  const key = name.slice('weights/'.length);
  if (key.startsWith('diffusion_model.')) return unet.overrides()?.get(`${SDXL_PREFIXES.unet}${key.slice('diffusion_model.'.length)}`);
  const l = /^clip_l\.transformer\.(.+)$/.exec(key);
  if (l) return t.clipL.overrides()?.get(`conditioner.embedders.0.transformer.${l[1]}`);
  const g = /^clip_g\.transformer\.text_model\.encoder\.layers\.(\d+)\.(self_attn\.(q|k|v|out)_proj|mlp\.fc1|mlp\.fc2)\.(weight|bias)$/.exec(key);
  if (!g) return undefined;
  const [, layer, module, qkv, part] = g;
  const base = `${SDXL_PREFIXES.clipG}transformer.resblocks.${layer}.`;
  const merged = t.clipG.overrides();
  if (qkv && qkv !== 'out') {
    const fused = merged?.get(`${base}attn.in_proj_${part}`);
    if (!fused) return undefined;
    const n = fused.length / 3;
    const i = ['q', 'k', 'v'].indexOf(qkv);
    return fused.subarray(i * n, (i + 1) * n);
  }
  const openclip = qkv === 'out' ? 'attn.out_proj' : module === 'mlp.fc1' ? 'mlp.c_fc' : 'mlp.c_proj';
  return merged?.get(`${base}${openclip}.${part}`);
}

function checkDebug(c: ConformanceCase, prefix: string, out: Record<string, TensorData>): void {
  for (const [name, t] of Object.entries(out)) {
    if (name !== 'intermediate' && c.hasExpected(`${prefix}/${name}`)) c.check(`${prefix}/${name}`, t.data as Float32Array);
  }
}

/**
 * `lora-sdxl-kohya` / `lora-sdxl-peft`: LoraLoader on an SDXL checkpoint. UNet patches at strength_model,
 * CLIP-L (te1 / text_encoder) and bigG (te2 / text_encoder_2) patches at strength_clip; the base handles are
 * checked last so a leaking patch fails.
 */
export const sdxlLoraKind: CaseKind = {
  name: 'sdxl-lora',
  matches: (c) => Boolean(c.json.models?.lora?.file) && isSdxlCase(c),
  async run(c, models) {
    const p = c.json.params ?? {};
    const strengthModel = Number(p.strength_model ?? 1);
    const strengthClip = Number(p.strength_clip ?? 1);
    const unet = models.unet(c);
    const text = await caseTextEncoder(c, models);
    const parsed = parseLora(c.modelPath(c.json.models.lora.file), checkpointKeyShapes(unet.weights.file));
    const split = splitPatches(parsed.patches);
    const baseText = patchedSdxlText(text);
    const patchedText = withSdxlTextLora(baseText, split.clip, strengthClip, 'lora');
    const baseUnet = PatchedUnet.of(unet);
    const patchedUnet = baseUnet.withAdapter({ id: 'lora', label: 'lora', patches: split.unet, strength: strengthModel });

    const tl = ids(c, 'tokens_l');
    const tg = ids(c, 'tokens_g');
    const r = await encode(patchedText, tl, tg);
    c.check('l/penultimate', r.l);
    c.check('g/penultimate', r.g);
    c.check('context', r.context);
    c.check('pooled', r.pooled);
    if (c.hasExpected('l/last_hidden_state')) checkDebug(c, 'l', await patchedText.clipL.run([tl], { clipSkip: 2, debug: true }));
    if (c.hasExpected('g/last_hidden_state')) checkDebug(c, 'g', await patchedText.clipG.run([tg], { clipSkip: 2, debug: true }));
    const w = Array.from(c.input('weighted/weights').data, Number);
    const weighted = await encode(patchedText, ids(c, 'weighted/tokens_l'), ids(c, 'weighted/tokens_g'), w);
    c.check('weighted/context', weighted.context);
    c.check('weighted/pooled', weighted.pooled);
    for (const name of c.expected.keys().filter((k) => k.startsWith('weights/'))) {
      const merged = mergedFor(name, patchedText, patchedUnet);
      if (merged) c.check(name, merged);
      else c.results.push({ tensor: name, maxError: Infinity, limit: 0, pass: false, note: 'the LoRA did not patch this weight' });
    }
    const x = c.input('x');
    const t = c.input('timesteps').data as Float32Array;
    const context = c.input('context');
    const y = c.input('y');
    c.check('eps', (await patchedUnet.eps(x, t, context, { y })).data as Float32Array);
    c.check('eps_base', (await baseUnet.eps(x, t, context, { y })).data as Float32Array);
    const base = await encode(baseText, tl, tg);
    c.check('context_base', base.context);
    c.check('pooled_base', base.pooled);
  },
};
