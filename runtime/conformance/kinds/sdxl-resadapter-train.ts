import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SDXL_UNET, unetKeyShapes } from '../../adapters/arch-tables.js';
import { openSdxlCheckpoint } from '../../models/sdxl/checkpoint.js';
import { SafetensorsFile } from '../../safetensors/reader.js';
import { resAdapterFileTable, type AdapterFileEntry } from '../../training/adapter-files.js';
import { unetArchOf, writeResAdapter } from '../../training/export.js';
import { adapterLayout, initParams } from '../../training/params.js';
import type { ConformanceCase } from '../case.js';
import { headOptions } from './sdxl-common.js';
import type { CaseKind } from './types.js';

type Table = Map<string, { shape: number[]; dtype: string; ldm?: string }>;

function headerTable(path: string): Table {
  const f = SafetensorsFile.open(path);
  return new Map(f.keys().map((k) => [k, { shape: [...f.info(k).shape], dtype: f.info(k).dtype }]));
}

/** Records one exact comparison of key sets, shapes, dtypes (and LDM targets where both sides give them). */
function compareTables(c: ConformanceCase, label: string, ours: Table, want: Table): void {
  const problems: string[] = [];
  for (const k of want.keys()) if (!ours.has(k)) problems.push(`missing ${k}`);
  for (const k of ours.keys()) if (!want.has(k)) problems.push(`extra ${k}`);
  for (const [k, w] of want) {
    const o = ours.get(k);
    if (!o) continue;
    if (o.dtype !== w.dtype) problems.push(`${k}: dtype ${o.dtype} != ${w.dtype}`);
    if (o.shape.join(',') !== w.shape.join(',')) problems.push(`${k}: shape [${o.shape}] != [${w.shape}]`);
    if (o.ldm && w.ldm && `diffusion_model.${o.ldm}` !== w.ldm) problems.push(`${k}: adapts ${o.ldm}, expected ${w.ldm}`);
  }
  const r = { tensor: label, maxError: problems.length, limit: 0, pass: problems.length === 0 };
  c.results.push(problems.length ? { ...r, note: problems.slice(0, 4).join('; ') } : r);
}

const asTable = (m: Map<string, AdapterFileEntry>): Table => new Map([...m].map(([k, v]) => [k, { ...v }]));

/**
 * `resadapter-sdxl-train-shapes`: the trainer's layout for the tiny SDXL UNet, written by the same exporter
 * training uses, must have exactly the released two-file key set; the same code on the real SDXL config must
 * reproduce the headers of every released SDXL ResAdapter in ../resadapter (rank read from each file).
 */
export const sdxlResAdapterTrainShapesKind: CaseKind = {
  name: 'sdxl-resadapter-train-shapes',
  matches: (c) => c.name.startsWith('resadapter-sdxl-train-shapes'),
  async run(c, models) {
    const ck = openSdxlCheckpoint(models.checkpointPath(c), headOptions(c));
    const rank = Number(c.json.params.rank);
    const alpha = Number(c.json.params.alpha);
    const layout = adapterLayout(ck.unet, rank, alpha);
    const planned = resAdapterFileTable(unetArchOf(ck.unet), layout);
    const dir = mkdtempSync(join(tmpdir(), 'resflow-sdxl-resadapter-'));
    try {
      const files = writeResAdapter(dir, ck.unet, layout, initParams(layout, (k) => ck.unet.read(k), 1));
      const written: Record<string, Table> = { 'pytorch_lora_weights.safetensors': headerTable(files.lora), 'diffusion_pytorch_model.safetensors': headerTable(files.norm!) };
      for (const [file, spec] of Object.entries(c.json.params.files as Record<string, Record<string, { shape: number[]; dtype: string; ldm: string }>>)) {
        const want: Table = new Map(Object.entries(spec).map(([k, v]) => [k, v]));
        compareTables(c, `layout/${file}`, asTable(planned[file] ?? new Map()), want);
        compareTables(c, `written/${file}`, written[file] ?? new Map(), want);
        const stem = file.replace(/\.safetensors$/, '');
        for (const [k, v] of want) if (c.hasExpected(`${stem}/${k}`)) c.check(`${stem}/${k}`, written[file]?.get(k)?.shape ?? []);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const released = join(c.dir, '..', '..', 'resadapter');
    const variants = existsSync(released) ? readdirSync(released).filter((d) => d.includes('sdxl')) : [];
    if (!variants.length) throw new Error(`no released SDXL ResAdapters under ${released}`);
    const realUnet = unetKeyShapes(SDXL_UNET, '');
    const tensors = { names: () => [...realUnet.keys()], shape: (k: string) => realUnet.get(k)! };
    for (const v of variants) {
      const lora = headerTable(join(released, v, 'pytorch_lora_weights.safetensors'));
      const down = [...lora].find(([k]) => k.endsWith('.lora_down.weight'));
      if (!down) throw new Error(`${v}: no lora_down weights`);
      const table = resAdapterFileTable(SDXL_UNET, adapterLayout(tensors, down[1].shape[0]!, alpha));
      compareTables(c, `released/${v}/pytorch_lora_weights`, asTable(table['pytorch_lora_weights.safetensors']!), lora);
      compareTables(c, `released/${v}/diffusion_pytorch_model`, asTable(table['diffusion_pytorch_model.safetensors']!), headerTable(join(released, v, 'diffusion_pytorch_model.safetensors')));
    }
  },
};
