import { compileGraph } from '../../graph/session.js';
import { resolveSizes, sdxlAdm, sdxlModelSampling } from '../../models/sdxl/index.js';
import type { UnetModel } from '../../models/unet/model.js';
import { buildUnetGraph } from '../../models/unet/unet.js';
import { applyResAdapter } from '../../pipeline/adapter-loaders.js';
import { PatchedUnet } from '../../pipeline/patched-model.js';
import { compareTensor, type ConformanceCase } from '../case.js';
import { isSdxlCase, sizesFromJson } from './sdxl-common.js';
import type { CaseKind } from './types.js';
import { checkMergedWeights, resAdapterStrengths } from './lora.js';
import { cInScale, epsToDenoised } from './unet.js';

/** Our y from the case's pooled input and params.sizes, against the y the case feeds (not an expected tensor). */
function checkYInput(c: ConformanceCase, unet: UnetModel): void {
  const sizes: unknown = c.json.params?.sizes;
  if (!c.hasInput('pooled') || !Array.isArray(sizes)) return;
  const pooled = c.input('pooled');
  const P = pooled.dims[1]!;
  const rows = sizes.map((s, i) => {
    const full = resolveSizes(sizesFromJson(s));
    return sdxlAdm((pooled.data as Float32Array).subarray(i * P, (i + 1) * P), P, full, unet.config.admInChannels ?? undefined);
  });
  const ours = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
  rows.forEach((r, i) => ours.set(r, i * r.length));
  const r = compareTensor('inputs/y (rebuilt from pooled + params.sizes)', ours, c.input('y').data as Float32Array, { atol: 1e-4, rtol: 6e-4 });
  c.results.push(r);
}

/** SDXL `unet` / `unet-odd`: eps with y, block intermediates, the embedding terms and the sigma wrapper. */
export const sdxlUnetKind: CaseKind = {
  name: 'sdxl-unet',
  matches: (c) => /^unet(-odd\d*)?$/.test(c.name) && isSdxlCase(c),
  async run(c, models) {
    const unet = models.unet(c);
    if (!unet.config.admInChannels) throw new Error('the UNet has no label_emb: not an SDXL UNet');
    const x = c.input('x');
    const timesteps = c.input('timesteps');
    const context = c.input('context');
    const y = c.input('y');
    checkYInput(c, unet);
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
      c.check('wrapper/timestep', ts);
      const cin = cInScale(x, sigma);
      c.check('wrapper/c_in_x', cin);
      const eps = (await unet.eps({ data: cin, dims: x.dims }, ts, context, { y })).data as Float32Array;
      c.check('wrapper/eps', eps);
      c.check('wrapper/denoised', epsToDenoised(x, eps, sigma));
    }
  },
};

/** Strengths from the `alpha_<s>/eps` tensors, as the SD1 ResAdapter case lays them out. */
/**
 * `lora-resadapter-sdxl`: ResAdapterLoader on the SDXL UNet at each strength (norms replaced, LoRA merged),
 * through patched handles over one shared session; the base is checked last so a leaking patch fails.
 */
export const sdxlResAdapterKind: CaseKind = {
  name: 'sdxl-resadapter',
  matches: (c) => Boolean(c.json.models?.resadapter?.lora_file) && isSdxlCase(c),
  async run(c, models) {
    const m = c.json.models.resadapter;
    const files = { lora: c.modelPath(m.lora_file), ...(m.norm_file ? { norm: c.modelPath(m.norm_file) } : {}) };
    const base = PatchedUnet.of(models.unet(c));
    const x = c.input('x');
    const t = c.input('timesteps').data as Float32Array;
    const context = c.input('context');
    const y = c.input('y');
    const strengths = resAdapterStrengths(c);
    if (!strengths.length) throw new Error('case has no alpha_<s>/eps tensors');
    const first = applyResAdapter(base, files, strengths[0]!.strength, { id: 'resadapter' });
    if (first.warnings.length) throw new Error(`ResAdapter warnings: ${first.warnings.join('; ')}`);
    for (const { prefix, strength } of strengths) {
      const model = first.model.withStrength('resadapter', strength);
      c.check(`${prefix}eps`, (await model.eps(x, t, context, { y })).data as Float32Array);
      checkMergedWeights(c, prefix, model);
    }
    c.check('eps_base', (await base.eps(x, t, context, { y })).data as Float32Array);
  },
};
