import { existsSync } from 'node:fs';
import { detectFamily } from '../../models/checkpoint.js';
import { clipConfigFromHF } from '../../models/clip/index.js';
import { openClipConfigFromHF } from '../../models/openclip/index.js';
import { SdxlTextEncoder, openSdxlCheckpoint, SDXL_PREFIXES, type SdxlSizes } from '../../models/sdxl/index.js';
import { Vae } from '../../models/vae/index.js';
import { SafetensorsFile } from '../../safetensors/reader.js';
import type { ConformanceCase } from '../case.js';
import type { CaseModels } from '../models.js';

/**
 * SDXL cases carry the same names as SD1 ones (unet, clip, samplers...), so kinds tell them apart by the
 * checkpoint the case names: its key layout, not the folder name, decides.
 */
const familyByPath = new Map<string, boolean>();

export function isSdxlCase(c: ConformanceCase): boolean {
  const rel = c.json.models?.checkpoint?.file;
  if (typeof rel !== 'string') return false;
  const path = c.modelPath(rel);
  let yes = familyByPath.get(path);
  if (yes === undefined) {
    yes = existsSync(path) && detectFamily(SafetensorsFile.open(path)) === 'sdxl';
    familyByPath.set(path, yes);
  }
  return yes;
}

/** Case JSON sizes (ComfyUI's snake_case keys) as SdxlSizes; missing keys stay missing. */
export function sizesFromJson(o: Record<string, unknown> | null | undefined): Partial<SdxlSizes> {
  const out: Partial<SdxlSizes> = {};
  const map: Array<[string, keyof SdxlSizes]> = [
    ['width', 'width'],
    ['height', 'height'],
    ['crop_w', 'cropW'],
    ['crop_h', 'cropH'],
    ['target_width', 'targetWidth'],
    ['target_height', 'targetHeight'],
  ];
  for (const [from, to] of map) if (o && typeof o[from] === 'number') out[to] = o[from] as number;
  return out;
}

interface SdxlParts {
  text: Map<string, Promise<SdxlTextEncoder>>;
  vae: Map<string, Promise<Vae>>;
}

// CaseModels caches UNets; the SDXL-only parts are cached beside it, per run.
const parts = new WeakMap<CaseModels, SdxlParts>();

function partsOf(models: CaseModels): SdxlParts {
  let p = parts.get(models);
  if (!p) parts.set(models, (p = { text: new Map(), vae: new Map() }));
  return p;
}

function cached<V>(map: Map<string, Promise<V>>, key: string, make: () => Promise<V>): Promise<V> {
  let v = map.get(key);
  if (!v) {
    v = make();
    map.set(key, v);
    v.catch(() => map.delete(key));
  }
  return v;
}

/** Both text encoders, with the head counts and activations case.json gives for the tiny towers. */
export function caseTextEncoder(c: ConformanceCase, models: CaseModels): Promise<SdxlTextEncoder> {
  const m = c.json.models.checkpoint;
  const path = models.checkpointPath(c);
  const key = `${path}|${JSON.stringify(m.clip_l_config ?? null)}|${JSON.stringify(m.clip_g_config ?? null)}`;
  return cached(partsOf(models).text, key, () =>
    SdxlTextEncoder.load(openSdxlCheckpoint(path, headOptions(c)), {
      clipL: m.clip_l_config ? clipConfigFromHF(m.clip_l_config) : {},
      clipG: m.clip_g_config ? openClipConfigFromHF(m.clip_g_config) : {},
    }),
  );
}

export function caseVae(c: ConformanceCase, models: CaseModels): Promise<Vae> {
  const path = models.checkpointPath(c);
  const scale = Number(c.json.models.checkpoint.vae_scale_factor ?? 0.13025);
  return cached(partsOf(models).vae, `${path}|${scale}`, () => Vae.load(path, { prefix: SDXL_PREFIXES.vae, scaleFactor: scale }));
}

/** The UNet head width from case.json (the tiny model's 16 cannot be read from shapes). */
export function headOptions(c: ConformanceCase): { numHeadChannels?: number } {
  const n = c.json.models?.checkpoint?.unet_config_comfy?.num_head_channels;
  return typeof n === 'number' && n > 0 ? { numHeadChannels: n } : {};
}

export const ids = (c: ConformanceCase, name: string): number[] => Array.from(c.input(name).data, Number);
