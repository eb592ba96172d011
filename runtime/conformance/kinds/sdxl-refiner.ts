import { join } from 'node:path';
import { compileGraph } from '../../graph/session.js';
import {
  openRefinerCheckpoint,
  refinerAdm,
  refinerTimeIdsEmbedding,
  resolveRefinerAdm,
  type PromptRole,
  type RefinerAdmValues,
  type RefinerCheckpoint,
} from '../../models/families/sdxl-refiner/index.js';
import { openClipConfigFromHF, OpenClipTextEncoder } from '../../models/openclip/index.js';
import { tokenizeSdxl } from '../../models/sdxl/conditioning.js';
import { sdxlModelSampling } from '../../models/sdxl/sampling.js';
import { UnetModel } from '../../models/unet/model.js';
import { buildUnetGraph } from '../../models/unet/unet.js';
import { ClipTokenizer } from '../../text/clip-tokenizer.js';
import type { ConformanceCase } from '../case.js';
import type { CaseModels } from '../models.js';
import type { CaseKind } from './types.js';
import { cInScale, epsToDenoised } from './unet.js';

interface RefinerParts {
  checkpoint: RefinerCheckpoint;
  unet: UnetModel;
  clipG: Promise<OpenClipTextEncoder>;
}

// CaseModels caches base UNets by checkpoint path; refiner parts are cached beside it, per run.
const cache = new WeakMap<CaseModels, Map<string, RefinerParts>>();

export function isRefinerCase(c: ConformanceCase): boolean {
  return typeof c.json.models?.refiner?.file === 'string' && !c.json.models?.checkpoint;
}

export function refinerParts(c: ConformanceCase, models: CaseModels): RefinerParts {
  const m = c.json.models.refiner;
  const path = c.modelPath(m.file);
  let byPath = cache.get(models);
  if (!byPath) cache.set(models, (byPath = new Map()));
  let p = byPath.get(path);
  if (!p) {
    const n = m.unet_config_comfy?.num_head_channels;
    const checkpoint = openRefinerCheckpoint(path, typeof n === 'number' && n > 0 ? { numHeadChannels: n } : {});
    const clipG = OpenClipTextEncoder.load(checkpoint.clipG, { config: m.clip_g_config ? openClipConfigFromHF(m.clip_g_config) : {} });
    p = { checkpoint, unet: new UnetModel(checkpoint.unet, checkpoint.unetConfig), clipG };
    byPath.set(path, p);
  }
  return p;
}

/** The CLIP tokenizer of the shared data folder (conformance sets sit beside `clip-tokenizer/`). */
export function caseTokenizer(c: ConformanceCase): ClipTokenizer {
  return ClipTokenizer.fromFolder(join(c.dir, '..', '..', 'clip-tokenizer'));
}

/** Case JSON adm values (snake_case) as RefinerAdmValues; missing keys stay missing. */
export function refinerValuesFromJson(o: Record<string, unknown> | undefined): Partial<RefinerAdmValues> {
  const out: Partial<RefinerAdmValues> = {};
  const map: Array<[string, keyof RefinerAdmValues]> = [
    ['width', 'width'],
    ['height', 'height'],
    ['crop_w', 'cropW'],
    ['crop_h', 'cropH'],
    ['aesthetic_score', 'aestheticScore'],
    ['ascore', 'aestheticScore'],
  ];
  for (const [from, to] of map) if (o && typeof o[from] === 'number') out[to] = o[from] as number;
  return out;
}

/** Refiner text conditioning: SDXLTokenizer's g list through bigG (penultimate, no final LN) + projected pooled. */
export async function encodeRefinerText(text: string, tok: ClipTokenizer, clipG: OpenClipTextEncoder) {
  const tokens = tokenizeSdxl(tok, text);
  const enc = await clipG.encodeTokens(tokens.g.tokens, tokens.g.weights, { clipSkip: 2 });
  return { tokens, cond: enc.cond, condDims: enc.condDims, pooled: enc.pooled };
}

/** `refiner-clip`: tokens, bigG-only cond and pooled, the 5-value time-ids embedding and y per conditioning. */
export const refinerClipKind: CaseKind = {
  name: 'sdxl-refiner-clip',
  matches: (c) => isRefinerCase(c) && c.name.startsWith('refiner-clip'),
  async run(c, models) {
    const parts = refinerParts(c, models);
    const clipG = await parts.clipG;
    const tok = caseTokenizer(c);
    const latent = c.json.params.latent_for_defaults as number[];
    const seenTokens = new Set<string>();
    for (const cond of c.json.params.conds as Array<Record<string, any>>) {
      const name = String(cond.name);
      const enc = await encodeRefinerText(String(cond.text), tok, clipG);
      const tokPrefix = String(cond.prompt_type) === 'positive' ? 'pos' : 'neg';
      if (!seenTokens.has(tokPrefix)) {
        seenTokens.add(tokPrefix);
        c.check(`${tokPrefix}/tokens_g`, enc.tokens.g.tokens.flat());
        c.check(`${tokPrefix}/tokens_l`, enc.tokens.l.tokens.flat());
      }
      c.check(`${name}/cond`, enc.cond);
      c.check(`${name}/pooled`, enc.pooled);
      const values = resolveRefinerAdm(refinerValuesFromJson(cond.conditioning_keys), cond.prompt_type as PromptRole, latent);
      c.check(`${name}/time_ids_embedding`, refinerTimeIdsEmbedding(values));
      c.check(`${name}/y`, refinerAdm(enc.pooled, enc.pooled.length, values, parts.unet.config.admInChannels ?? undefined));
    }
  },
};

/** `refiner-unet*`: the 4-level refiner UNet (bigG-wide context, 5-value y), block intermediates and sigma wrapper. */
export const refinerUnetKind: CaseKind = {
  name: 'sdxl-refiner-unet',
  matches: (c) => isRefinerCase(c) && /^refiner-unet(-odd\d*)?$/.test(c.name),
  async run(c, models) {
    const { unet } = refinerParts(c, models);
    const x = c.input('x');
    const timesteps = c.input('timesteps');
    const context = c.input('context');
    const y = c.input('y');
    const adm = c.json.params?.adm_args;
    if (Array.isArray(adm) && c.hasInput('pooled')) {
      const pooled = c.input('pooled').data as Float32Array;
      const P = pooled.length / adm.length;
      const rows = adm.map((a, i) => refinerAdm(pooled.subarray(i * P, (i + 1) * P), P, resolveRefinerAdm(refinerValuesFromJson(a), 'positive')));
      const ours = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
      rows.forEach((r, i) => ours.set(r, i * r.length));
      c.results.push({ ...compareY(ours, y.data as Float32Array) });
    }
    const inter = c.expected.keys().filter((k) => k.startsWith('intermediate/'));
    if (inter.length) {
      const session = await compileGraph(buildUnetGraph(unet.weights, unet.config, { intermediates: true }));
      const out = await session.run({ x, timesteps, context, y });
      for (const name of inter) if (out[name]) c.check(name, out[name]!.data as Float32Array);
      c.check('eps', out.eps!.data as Float32Array);
    } else {
      c.check('eps', (await unet.eps(x, timesteps.data as Float32Array, context, { y })).data as Float32Array);
    }
    if (c.hasInput('sigma')) {
      const sigma = c.input('sigma').data as Float32Array;
      const ms = sdxlModelSampling();
      const ts = Float32Array.from(sigma, (s) => ms.sigmaToTimestep(s));
      const cin = cInScale(x, sigma);
      const eps = (await unet.eps({ data: cin, dims: x.dims }, ts, context, { y })).data as Float32Array;
      c.check('wrapper/denoised', epsToDenoised(x, eps, sigma));
    }
  },
};

function compareY(ours: Float32Array, fed: Float32Array) {
  let maxErr = 0;
  let maxE = 0;
  for (let i = 0; i < fed.length; i++) {
    maxErr = Math.max(maxErr, Math.abs(ours[i]! - fed[i]!));
    maxE = Math.max(maxE, Math.abs(fed[i]!));
  }
  const limit = 1e-4 + 6e-4 * maxE;
  return { tensor: 'inputs/y (rebuilt from pooled + params.adm_args)', maxError: maxErr, limit, pass: ours.length === fed.length && maxErr <= limit };
}
