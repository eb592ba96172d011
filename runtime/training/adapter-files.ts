import type { UnetArch } from '../adapters/arch-tables.js';
import { RESADAPTER_LORA_NAMES, RESADAPTER_NORM_NAMES } from '../adapters/resadapter.js';
import { resAdapterKeyNames } from './export.js';
import type { AdapterLayout } from './params.js';

export interface AdapterFileEntry {
  shape: number[];
  dtype: 'F16' | 'F32';
  /** The UNet-relative LDM parameter the key adapts (LoRA: merged into it; norms: replace it). */
  ldm: string;
}

/**
 * Every key writeResAdapter puts in the two released files for `layout`, with shape and dtype, by file name.
 * This is the table a trained adapter is checked against (and what the released SDXL/SD1.5 headers hold).
 */
export function resAdapterFileTable(arch: UnetArch, layout: AdapterLayout): Record<string, Map<string, AdapterFileEntry>> {
  const names = resAdapterKeyNames(arch, layout);
  const lora = new Map<string, AdapterFileEntry>();
  for (const m of layout.lora) {
    const k = names.lora.get(m.module)!;
    const [out, inCh, kh, kw] = m.shape;
    const ldm = `${m.module}.weight`;
    lora.set(`${k}.alpha`, { shape: [], dtype: 'F16', ldm });
    lora.set(`${k}.lora_down.weight`, { shape: [layout.rank, inCh, kh, kw], dtype: 'F16', ldm });
    lora.set(`${k}.lora_up.weight`, { shape: [out, layout.rank, 1, 1], dtype: 'F16', ldm });
  }
  const norms = new Map<string, AdapterFileEntry>();
  for (const key of layout.norms) {
    const p = layout.params.find((x) => x.target === key)!;
    norms.set(names.norms.get(key)!, { shape: [...p.shape], dtype: 'F32', ldm: key });
  }
  return { [RESADAPTER_LORA_NAMES[0]]: lora, [RESADAPTER_NORM_NAMES[0]]: norms };
}
