import { Vae } from '../../models/vae/index.js';
import type { CaseKind } from './types.js';

type Shape4 = [number, number, number, number];

/** `decode<i>/{raw,image,intermediate/...}` from `decode<i>/z`; `encode<i>/{moments,mean,logvar,latent}` from `encode<i>/image`. */
export const vaeKind: CaseKind = {
  name: 'vae',
  matches: (c) => c.name === 'vae',
  async run(c, models) {
    const vae = await Vae.load(models.checkpointPath(c));
    const input = (name: string) => {
      const t = c.input(name);
      return { data: t.data as Float32Array, shape: [...t.dims] as Shape4 };
    };
    const groups = new Set(c.expected.keys().map((k) => k.split('/')[0]!));
    for (const g of groups) {
      if (g.startsWith('decode')) {
        const z = input(`${g}/z`);
        if (c.hasExpected(`${g}/raw`)) c.check(`${g}/raw`, (await vae.decodeRaw(z)).data);
        if (c.hasExpected(`${g}/image`)) c.check(`${g}/image`, (await vae.decode(z)).data);
        const inter = c.expected.keys().filter((k) => k.startsWith(`${g}/intermediate/`));
        if (inter.length) {
          const got = await vae.decodeIntermediates(z);
          for (const k of inter) {
            const t = got[k.slice(`${g}/intermediate/`.length)];
            if (t) c.check(k, t.data);
          }
        }
      } else if (g.startsWith('encode')) {
        const img = input(`${g}/image`);
        const p = await vae.encodeMoments(img);
        if (c.hasExpected(`${g}/moments`)) c.check(`${g}/moments`, p.moments.data);
        if (c.hasExpected(`${g}/mean`)) c.check(`${g}/mean`, p.mean.data);
        if (c.hasExpected(`${g}/logvar`) && p.logvar) c.check(`${g}/logvar`, p.logvar.data);
        if (c.hasExpected(`${g}/latent`)) c.check(`${g}/latent`, (await vae.encode(img)).data);
      }
    }
  },
};
