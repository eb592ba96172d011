import { ClipTextEncoder, clipConfigFromHF } from '../../models/clip/index.js';
import type { CaseKind } from './types.js';

/** Prompts in a clip case are the prefixes of its `<prompt>/tokens` inputs. */
function promptsOf(keys: string[]): string[] {
  return keys.filter((k) => k.endsWith('/tokens')).map((k) => k.slice(0, -'/tokens'.length));
}

export const clipKind: CaseKind = {
  name: 'clip',
  matches: (c) => c.name === 'clip' || (c.name.startsWith('clip') && c.hasExpected(`${promptsOf(c.inputs?.keys() ?? [])[0]}/last_hidden_state`)),
  async run(c, models) {
    const cfg = c.json.models?.checkpoint?.clip_config;
    const enc = await ClipTextEncoder.load(models.checkpointPath(c), cfg ? { config: clipConfigFromHF(cfg) } : {});
    const window = (name: string) => Array.from(c.input(name).data, Number);
    for (const p of promptsOf(c.inputs?.keys() ?? [])) {
      const tokens = window(`${p}/tokens`);
      const weightsName = `${p}/weights`;
      if (c.hasInput(weightsName)) {
        const r = await enc.encodeTokens([tokens], [window(weightsName)]);
        c.check(`${p}/last_hidden_state`, r.cond);
        c.check(`${p}/pooled`, r.pooled);
        continue;
      }
      const dbg = await enc.run([tokens], { clipSkip: 2, debug: true });
      const n = enc.config.numLayers;
      for (const [name, t] of Object.entries(dbg)) if (c.hasExpected(`${p}/${name}`)) c.check(`${p}/${name}`, t.data as Float32Array);
      if (c.hasExpected(`${p}/penultimate_raw`)) c.check(`${p}/penultimate_raw`, dbg[`hidden_states.${n - 1}`]!.data as Float32Array);
      if (c.hasExpected(`${p}/penultimate_ln`)) c.check(`${p}/penultimate_ln`, dbg.intermediate!.data as Float32Array);
      const r = await enc.encodeTokens([tokens]);
      c.check(`${p}/pooled`, r.pooled);
    }
  },
};
