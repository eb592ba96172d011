import { UNET_PREFIX } from '../../adapters/arch-tables.js';
import type { TensorData } from '../../graph/session.js';
import { ClipTextEncoder, CLIP_OUTPUTS, clipConfigFromHF } from '../../models/clip/index.js';
import { applyResAdapter, loadLoraForModels } from '../../pipeline/adapter-loaders.js';
import { PatchedClip, PatchedUnet } from '../../pipeline/patched-model.js';
import type { ConformanceCase } from '../case.js';
import type { CaseModels } from '../models.js';
import type { CaseKind } from './types.js';

/**
 * Adapter cases run through the same path as a workflow: patched handles over the shared UNet session, the
 * merged weights fed as run-time inputs. The unpatched tensors are checked after the patched runs, from
 * the same base handle, so a patch leaking into the base model fails the case.
 */

interface UnetInputs {
  x: TensorData;
  timesteps: Float32Array;
  context: TensorData;
}

function unetInputs(c: ConformanceCase): UnetInputs {
  return { x: c.input('x'), timesteps: c.input('timesteps').data as Float32Array, context: c.input('context') };
}

async function checkEps(c: ConformanceCase, name: string, model: PatchedUnet, i: UnetInputs): Promise<void> {
  const eps = await model.eps(i.x, i.timesteps, i.context);
  c.check(name, eps.data as Float32Array);
}

/** `<prefix>weights/<ldm name>` debug tensors: compared against the handle's merged weights. */
export function checkMergedWeights(c: ConformanceCase, prefix: string, model: PatchedUnet): void {
  const merged = model.overrides();
  for (const name of c.expected.keys()) {
    if (!name.startsWith(`${prefix}weights/`)) continue;
    const key = UNET_PREFIX + name.slice(`${prefix}weights/`.length);
    const w = merged?.get(key);
    if (w) c.check(name, w);
    else c.results.push({ tensor: name, maxError: Infinity, limit: 0, pass: false, note: `the adapter did not patch ${key}` });
  }
}

/** The strengths a resadapter case was run at, from its `alpha_<s>/eps` tensors (params.strengths as fallback). */
export function resAdapterStrengths(c: ConformanceCase): Array<{ prefix: string; strength: number }> {
  const found = c.expected
    .keys()
    .map((k) => /^(alpha_([^/]+)\/)eps$/.exec(k))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ prefix: m[1]!, strength: Number(m[2]) }));
  if (found.length) return found;
  const listed: unknown = c.json.params?.strengths;
  return Array.isArray(listed) ? listed.map((s) => ({ prefix: `alpha_${Number(s).toFixed(1)}/`, strength: Number(s) })) : [];
}

export const loraResAdapterKind: CaseKind = {
  name: 'lora-resadapter',
  matches: (c) => Boolean(c.json.models?.resadapter?.lora_file),
  async run(c, models) {
    const m = c.json.models.resadapter;
    const files = { lora: c.modelPath(m.lora_file), ...(m.norm_file ? { norm: c.modelPath(m.norm_file) } : {}) };
    const base = PatchedUnet.of(models.unet(c));
    const inputs = unetInputs(c);
    const strengths = resAdapterStrengths(c);
    if (!strengths.length) throw new Error('case lists no strengths (no alpha_<s>/eps tensors, no params.strengths)');
    // Loaded once; each further strength is a withStrength handle, as a UI slider would produce.
    const first = applyResAdapter(base, files, strengths[0]!.strength, { id: 'resadapter' }).model;
    for (const { prefix, strength } of strengths) {
      const model = first.withStrength('resadapter', strength);
      await checkEps(c, `${prefix}eps`, model, inputs);
      checkMergedWeights(c, prefix, model);
    }
    await checkEps(c, 'eps_base', base, inputs);
  },
};

async function caseClip(c: ConformanceCase, models: CaseModels): Promise<PatchedClip> {
  const cfg = c.json.models?.checkpoint?.clip_config;
  const enc = await ClipTextEncoder.load(models.checkpointPath(c), cfg ? { config: clipConfigFromHF(cfg) } : {});
  return PatchedClip.of(enc);
}

async function checkClip(c: ConformanceCase, name: string, clip: PatchedClip, tokens: number[]): Promise<void> {
  const out = await clip.run([tokens]);
  c.check(name, out[CLIP_OUTPUTS.last]!.data as Float32Array);
}

/** LoraLoader cases: UNet eps at strength_model, and CLIP states at strength_clip when the case has them. */
async function runLora(c: ConformanceCase, models: CaseModels): Promise<void> {
  const p = c.json.params ?? {};
  const strengthModel = Number(p.strength_model ?? 1);
  const strengthClip = Number(p.strength_clip ?? 0);
  const wantsClip = c.hasExpected('clip/last_hidden_state');
  const baseModel = PatchedUnet.of(models.unet(c));
  const baseClip = wantsClip ? await caseClip(c, models) : undefined;
  const { model, clip, warnings } = loadLoraForModels(baseModel, baseClip, c.modelPath(c.json.models.lora.file), strengthModel, wantsClip ? strengthClip : 0);
  // A text-encoder part with no CLIP tensors to check is what LoraLoaderModelOnly drops too.
  void warnings;
  const inputs = unetInputs(c);
  await checkEps(c, 'eps', model!, inputs);
  checkMergedWeights(c, '', model!);
  if (wantsClip) {
    const tokens = Array.from(c.input('tokens').data, Number);
    await checkClip(c, 'clip/last_hidden_state', clip!, tokens);
    await checkClip(c, 'clip/last_hidden_state_base', baseClip!, tokens);
  }
  await checkEps(c, 'eps_base', baseModel, inputs);
}

export const loraKohyaKind: CaseKind = {
  name: 'lora-kohya',
  matches: (c) => Boolean(c.json.models?.lora?.file) && (c.name.startsWith('lora-kohya') || c.hasExpected('clip/last_hidden_state')),
  run: runLora,
};

export const loraPeftKind: CaseKind = {
  name: 'lora-peft',
  matches: (c) => Boolean(c.json.models?.lora?.file),
  run: runLora,
};

/** Most specific first, as CASE_KINDS expects. */
export const LORA_KINDS: CaseKind[] = [loraResAdapterKind, loraKohyaKind, loraPeftKind];
