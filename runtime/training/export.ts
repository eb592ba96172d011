/**
 * Writes a trained adapter in the released ResAdapter format, so it loads in ResFlow's ApplyResAdapter and
 * in the official diffusers pipelines unchanged: `pytorch_lora_weights.safetensors`, a kohya conv LoRA in
 * F16 (`lora_unet_<diffusers module>.lora_down/.lora_up/.alpha`), and `diffusion_pytorch_model.safetensors`,
 * the GroupNorm affines in F32 under diffusers UNet names.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { inferUnetArch, keyShapesOf } from '../adapters/arch-tables.js';
import { unetDiffusersModulesToLdm } from '../adapters/keymap.js';
import { RESADAPTER_LORA_NAMES, RESADAPTER_NORM_NAMES, type ResAdapterFiles } from '../adapters/resadapter.js';
import type { WeightSet } from '../models/weights.js';
import { writeSafetensors, type TensorToWrite } from '../safetensors/writer.js';
import type { AdapterLayout, ParamStore } from './params.js';

const F16_MAX = 65504;

/** LDM module (UNet-relative) → diffusers module, for the UNet of `w`. */
export function ldmToDiffusersModules(w: WeightSet): Map<string, string> {
  const arch = inferUnetArch(keyShapesOf(w.file), w.prefix);
  if (!arch) throw new Error(`${w.file.path}: no recognisable UNet under "${w.prefix}"`);
  return new Map([...unetDiffusersModulesToLdm(arch)].map(([d, l]) => [l, d]));
}

export function kohyaName(diffusersModule: string): string {
  return `lora_unet_${diffusersModule.replace(/\./g, '_')}`;
}

export function writeResAdapter(dir: string, w: WeightSet, layout: AdapterLayout, params: ParamStore, metadata: Record<string, string> = {}): ResAdapterFiles {
  const names = ldmToDiffusersModules(w);
  const diffusers = (ldmModule: string) => {
    const d = names.get(ldmModule);
    if (!d) throw new Error(`no diffusers name for UNet module ${ldmModule}`);
    return d;
  };
  const f16 = (name: string, shape: number[], data: Float32Array): TensorToWrite => {
    const bad = data.findIndex((v) => !Number.isFinite(v) || Math.abs(v) > F16_MAX);
    if (bad >= 0) throw new Error(`${name}: value ${data[bad]} does not fit F16; the adapter diverged`);
    return { dtype: 'F16', shape, data };
  };
  const lora: Record<string, TensorToWrite> = {};
  for (const m of layout.lora) {
    const k = kohyaName(diffusers(m.module));
    const [out, inCh, kh, kw] = m.shape;
    lora[`${k}.alpha`] = { dtype: 'F16', shape: [], data: [layout.alpha] };
    lora[`${k}.lora_down.weight`] = f16(m.down, [layout.rank, inCh, kh, kw], params.get(m.down)!);
    lora[`${k}.lora_up.weight`] = f16(m.up, [out, layout.rank, 1, 1], params.get(m.up)!);
  }
  const norms: Record<string, TensorToWrite> = {};
  for (const key of layout.norms) {
    const [, module, part] = /^(.*)\.(weight|bias)$/.exec(key)!;
    const data = params.get(`norm/${key}`)!;
    norms[`${diffusers(module!)}.${part}`] = { dtype: 'F32', shape: [data.length], data };
  }
  mkdirSync(dir, { recursive: true });
  const meta = { format: 'pt', ...metadata };
  const files: ResAdapterFiles = { lora: join(dir, RESADAPTER_LORA_NAMES[0]), norm: join(dir, RESADAPTER_NORM_NAMES[0]) };
  // Norms first: a reader that finds the LoRA file treats the folder as complete.
  writeSafetensors(files.norm!, norms, meta);
  writeSafetensors(files.lora, lora, meta);
  return files;
}
