/**
 * The training objectives of the Shapes model as IR graphs with a scalar `loss` output, built from the same
 * model code inference uses (so what is trained is exactly what the pipeline runs):
 * - the VAE: encoder → reparameterised sample → decoder, pixel loss + a small KL term;
 * - the UNet: epsilon prediction, mean squared error against the noise.
 */
import { GraphExtender } from '../graph/autodiff/index.js';
import type { Graph } from '../graph/ir.js';
import type { UnetConfig } from '../models/unet/config.js';
import { buildUnetGraph } from '../models/unet/unet.js';
import type { VaeConfig } from '../models/vae/config.js';
import { buildDecoderGraph, buildEncoderGraph } from '../models/vae/graph.js';
import type { WeightSet } from '../models/weights.js';
import { spliceGraphs } from './graph-tools.js';

/**
 * Inputs `image` [B, 3, H, W] in [0, 1] and `noise` [B, z, H/8, W/8]; outputs `loss`, `recon` (pixel
 * loss: MSE + Charbonnier, in the decoder's [-1, 1] range), `kl` (mean per latent element) and `mean`
 * (the posterior mean).
 */
export function buildVaeLossGraph(ws: WeightSet, cfg: VaeConfig, klWeight: number): Graph {
  if (!cfg.doubleZ) throw new Error('VAE training needs an encoder with mean and log-variance outputs');
  const enc = buildEncoderGraph(ws, cfg);
  const ext = new GraphExtender(enc);
  const { g } = ext;
  const image = ext.handle(enc.inputs.find((i) => i.name === 'image')!.value);
  const moments = ext.handle(enc.outputs.find((o) => o.name === 'moments')!.value);
  const zc = cfg.embedDim;
  const mean = g.slice(moments, 1, 0, zc);
  const logvar = g.slice(moments, 1, zc, 2 * zc);
  const noise = g.input('noise', 'float32', mean.shape);
  const z = g.add(mean, g.mul(g.exp(g.mul(logvar, 0.5)), noise));
  const kl = g.reduceMean(g.mul(g.sub(g.add(g.mul(mean, mean), g.exp(logvar)), g.add(logvar, 1)), 0.5), [0, 1, 2, 3], false);
  g.output('mean', mean);
  const dec = buildDecoderGraph(ws, cfg);
  const joined = spliceGraphs(g.graph, z.id, dec, 'z', '_z');
  const ext2 = new GraphExtender(joined);
  const g2 = ext2.g;
  const raw = ext2.handle(joined.outputs.find((o) => o.name === 'raw')!.value);
  const d = g2.sub(raw, g2.sub(g2.mul(ext2.handle(image.id), 2), 1));
  const sq = g2.mul(d, d);
  const recon = g2.add(g2.reduceMean(sq, [0, 1, 2, 3], false), g2.reduceMean(g2.sqrt(g2.add(sq, 1e-3)), [0, 1, 2, 3], false));
  g2.output('recon', recon);
  g2.output('kl', ext2.handle(kl.id));
  g2.output('loss', g2.add(recon, g2.mul(ext2.handle(kl.id), klWeight)));
  const out = g2.graph;
  out.outputs = out.outputs.filter((o) => ['loss', 'recon', 'kl', 'mean'].includes(o.name));
  return out;
}

/** Inputs x (noised latents), timesteps, context and target (the noise); output `loss` = mean((eps − target)²). */
export function buildUnetLossGraph(w: WeightSet, cfg: UnetConfig): Graph {
  const forward = buildUnetGraph(w, cfg);
  const ext = new GraphExtender(forward);
  const { g } = ext;
  const eps = ext.handle(forward.outputs.find((o) => o.name === 'eps')!.value);
  const d = g.sub(eps, g.input('target', 'float32', ['B', cfg.outChannels, 'H', 'W']));
  g.output('loss', g.reduceMean(g.mul(d, d), [0, 1, 2, 3], false));
  g.graph.outputs = g.graph.outputs.filter((o) => o.name === 'loss');
  return g.graph;
}
