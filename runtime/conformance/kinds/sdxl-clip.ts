import type { TensorData } from '../../graph/session.js';
import { resolveSizes, sdxlAdm, sizeEmbedding, sizeIds, type SdxlTextEncoder } from '../../models/sdxl/index.js';
import type { ConformanceCase } from '../case.js';
import { caseTextEncoder, ids, isSdxlCase, sizesFromJson } from './sdxl-common.js';
import type { CaseKind } from './types.js';

/** Prompt names: prefixes of the `<p>/tokens_l` inputs. */
function promptsOf(c: ConformanceCase): string[] {
  return (c.inputs?.keys() ?? []).filter((k) => k.endsWith('/tokens_l')).map((k) => k.slice(0, -'/tokens_l'.length));
}

/** Per-layer debug states of one encoder under `<p>/<side>/...`, as far as the case has them. */
function checkDebug(c: ConformanceCase, prefix: string, out: Record<string, TensorData>): void {
  for (const [name, t] of Object.entries(out)) {
    if (name !== 'intermediate' && c.hasExpected(`${prefix}/${name}`)) c.check(`${prefix}/${name}`, t.data as Float32Array);
  }
}

async function checkPrompt(c: ConformanceCase, text: SdxlTextEncoder, p: string): Promise<Float32Array> {
  const l = ids(c, `${p}/tokens_l`);
  const g = ids(c, `${p}/tokens_g`);
  const weightName = `${p}/weights`;
  const w = c.hasInput(weightName) ? [Array.from(c.input(weightName).data, Number)] : undefined;
  const r = await text.encodeTokens({ l: { tokens: [l], ...(w ? { weights: w } : {}) }, g: { tokens: [g], ...(w ? { weights: w } : {}) } });
  c.check(`${p}/context`, r.context);
  c.check(`${p}/pooled`, r.pooled);
  if (c.hasExpected(`${p}/l/penultimate`)) c.check(`${p}/l/penultimate`, r.l.cond);
  if (c.hasExpected(`${p}/g/penultimate`)) c.check(`${p}/g/penultimate`, r.g.cond);
  if (c.hasExpected(`${p}/g/pooled_unprojected`)) c.check(`${p}/g/pooled_unprojected`, r.g.pooledUnprojected);
  if (c.hasExpected(`${p}/l/embeddings`)) checkDebug(c, `${p}/l`, await text.clipL.run([l], { clipSkip: 2, debug: true }));
  if (c.hasExpected(`${p}/g/embeddings`)) checkDebug(c, `${p}/g`, await text.clipG.run([g], { clipSkip: 2, debug: true }));
  return r.pooled;
}

/**
 * SDXL `clip`: both encoders from token ids (penultimate states, pooled, context, weighting), then the y
 * vector for each size setting, built from our own pooled output.
 */
export const sdxlClipKind: CaseKind = {
  name: 'sdxl-clip',
  matches: (c) => c.name.startsWith('clip') && isSdxlCase(c),
  async run(c, models) {
    const text = await caseTextEncoder(c, models);
    const pooled = new Map<string, Float32Array>();
    for (const p of promptsOf(c)) pooled.set(`${p}/pooled`, await checkPrompt(c, text, p));

    const sizes: unknown = c.json.params?.sizes;
    for (const s of Array.isArray(sizes) ? sizes : []) {
      const name = String(s.name);
      const latent = Array.isArray(s.latent_shape_for_defaults) ? (s.latent_shape_for_defaults as number[]) : undefined;
      const resolved = resolveSizes(sizesFromJson(s.conditioning_keys), latent);
      const values = `sizes/${name}/values`;
      if (c.hasInput(values)) {
        const want = Array.from(c.input(values).data, Number);
        const got = sizeIds(resolved);
        if (want.some((v, i) => v !== got[i])) throw new Error(`sizes "${name}": resolved ids [${got.join(', ')}] differ from the case's [${want.join(', ')}]`);
      }
      const emb = `sizes/${name}/time_ids_embedding`;
      if (c.hasExpected(emb)) {
        const parts = sizeIds(resolved).map((v) => sizeEmbedding(v));
        const flat = new Float32Array(parts.length * parts[0]!.length);
        parts.forEach((e, i) => flat.set(e, i * e.length));
        c.check(emb, flat);
      }
      const p = pooled.get(String(s.pooled ?? 'short/pooled'));
      if (!p) throw new Error(`sizes "${name}": no pooled output "${s.pooled}" was computed`);
      c.check(`sizes/${name}/y`, sdxlAdm(p, p.length, resolved));
    }
  },
};
