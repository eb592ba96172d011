/**
 * Writes a trained adapter in the released ResAdapter format, so it loads in ResFlow's ApplyResAdapter and
 * in the official diffusers pipelines unchanged: `pytorch_lora_weights.safetensors`, a kohya conv LoRA in
 * F16 (`lora_unet_<diffusers module>.lora_down/.lora_up/.alpha`), and `diffusion_pytorch_model.safetensors`,
 * the GroupNorm affines in F32 under diffusers UNet names.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { inferUnetArch, keyShapesOf, type UnetArch } from '../adapters/arch-tables.js';
import { unetDiffusersModulesToLdm } from '../adapters/keymap.js';
import { loadResAdapter, RESADAPTER_LORA_NAMES, RESADAPTER_NORM_NAMES, type ResAdapterFiles } from '../adapters/resadapter.js';
import type { WeightSet } from '../models/weights.js';
import { writeSafetensors, type TensorToWrite } from '../safetensors/writer.js';
import { normName, type AdapterLayout, type ParamStore } from './params.js';

const F16_MAX = 65504;

/** The UNet architecture of `w`, as the adapter key maps need it. */
export function unetArchOf(w: WeightSet): UnetArch {
  const arch = inferUnetArch(keyShapesOf(w.file), w.prefix);
  if (!arch) throw new Error(`${w.file.path}: no recognisable UNet under "${w.prefix}"`);
  return arch;
}

export function kohyaName(diffusersModule: string): string {
  return `lora_unet_${diffusersModule.replace(/\./g, '_')}`;
}

/**
 * File key names of an adapter for `arch`: kohya module prefix per LoRA module, diffusers tensor name per
 * norm key (both from UNet-relative LDM names).
 */
export function resAdapterKeyNames(arch: UnetArch, layout: Pick<AdapterLayout, 'lora' | 'norms'>): { lora: Map<string, string>; norms: Map<string, string> } {
  const names = new Map([...unetDiffusersModulesToLdm(arch)].map(([d, l]) => [l, d]));
  const diffusers = (ldmModule: string) => {
    const d = names.get(ldmModule);
    if (!d) throw new Error(`no diffusers name for UNet module ${ldmModule}`);
    return d;
  };
  const lora = new Map(layout.lora.map((m) => [m.module, kohyaName(diffusers(m.module))]));
  const norms = new Map(
    layout.norms.map((key) => {
      const [, module, part] = /^(.*)\.(weight|bias)$/.exec(key)!;
      return [key, `${diffusers(module!)}.${part}`];
    }),
  );
  return { lora, norms };
}

export function writeResAdapter(dir: string, w: WeightSet, layout: AdapterLayout, params: ParamStore, metadata: Record<string, string> = {}): ResAdapterFiles {
  const keys = resAdapterKeyNames(unetArchOf(w), layout);
  const f16 = (name: string, shape: number[], data: Float32Array): TensorToWrite => {
    const bad = data.findIndex((v) => !Number.isFinite(v) || Math.abs(v) > F16_MAX);
    if (bad >= 0) throw new Error(`${name}: value ${data[bad]} does not fit F16; the adapter diverged`);
    return { dtype: 'F16', shape, data };
  };
  const lora: Record<string, TensorToWrite> = {};
  for (const m of layout.lora) {
    const k = keys.lora.get(m.module)!;
    const [out, inCh, kh, kw] = m.shape;
    lora[`${k}.alpha`] = { dtype: 'F16', shape: [], data: [layout.alpha] };
    lora[`${k}.lora_down.weight`] = f16(m.down, [layout.rank, inCh, kh, kw], params.get(m.down)!);
    lora[`${k}.lora_up.weight`] = f16(m.up, [out, layout.rank, 1, 1], params.get(m.up)!);
  }
  const norms: Record<string, TensorToWrite> = {};
  for (const key of layout.norms) {
    const data = params.get(normName(key))!;
    norms[keys.norms.get(key)!] = { dtype: 'F32', shape: [data.length], data };
  }
  mkdirSync(dir, { recursive: true });
  const meta = { format: 'pt', ...metadata };
  const files: ResAdapterFiles = { lora: join(dir, RESADAPTER_LORA_NAMES[0]), norm: join(dir, RESADAPTER_NORM_NAMES[0]) };
  // Norms first: a reader that finds the LoRA file treats the folder as complete.
  writeSafetensors(files.norm!, norms, meta);
  writeSafetensors(files.lora, lora, meta);
  return files;
}

/**
 * The parameters of an existing ResAdapter (released or trained here) in `layout`'s terms, to fine-tune it
 * or to check a saved adapter. Norms the file lacks keep `base`; the LoRA must have the layout's rank.
 */
export function readResAdapterParams(source: string | ResAdapterFiles, w: WeightSet, layout: AdapterLayout, base: ParamStore): ParamStore {
  const adapter = loadResAdapter(source, keyShapesOf(w.file));
  const out: ParamStore = new Map([...base].map(([k, v]) => [k, v.slice()]));
  for (const m of layout.lora) {
    const patch = adapter.patches.find((p) => p.target === `${w.prefix}${m.module}.weight`);
    if (!patch) {
      out.get(m.up)!.fill(0);
      continue;
    }
    if (patch.rank !== layout.rank || patch.mid) throw new Error(`${adapter.files.lora}: ${patch.source} has rank ${patch.rank}, this layout rank ${layout.rank}`);
    // The file's delta is (alpha_f / r)·up·down; the layout applies (alpha / r): fold the ratio into up.
    const ratio = (patch.alpha ?? patch.rank) / layout.alpha;
    out.set(m.down, patch.down.slice());
    out.set(m.up, patch.up.map((v) => v * ratio));
  }
  for (const key of layout.norms) {
    const data = adapter.norms.get(`${w.prefix}${key}`);
    if (data) out.set(normName(key), data.slice());
  }
  return out;
}
