/**
 * A1111 hypernetworks as ComfyUI's HypernetworkLoader applies them: per context width `dim` the file holds
 * two small MLPs, one for keys and one for values; on every attention whose key input is `dim` wide (text
 * context for cross-attention, or the normed hidden state for self-attention) they add
 * `mlp(k) * strength` to k and v before the projections.
 */
import { statSync } from 'node:fs';
import type { GraphBuilder, T } from '../../graph/builder.js';
import { readTorchObject, TorchCheckpointError, type LoadedTensor, type TorchValue } from '../../torchfile/torch-checkpoint.js';

export const HYPERNETWORK_ACTIVATIONS = ['linear', 'relu', 'leakyrelu', 'elu', 'swish', 'tanh', 'sigmoid', 'softsign', 'mish'] as const;
export type HypernetworkActivation = (typeof HYPERNETWORK_ACTIVATIONS)[number];

export interface HnLayer {
  weight: Float32Array;
  /** [out, in] */
  shape: [number, number];
  bias: Float32Array;
  /** LayerNorm after this linear (is_layer_norm files). */
  norm?: { weight: Float32Array; bias: Float32Array };
  activate: boolean;
}

export interface HypernetworkPatch {
  kind: 'hypernetwork';
  /** Identifies file content and strength (sessions are cached per patch set). */
  id: string;
  strength: number;
  activation: HypernetworkActivation;
  modules: Array<{ dim: number; k: HnLayer[]; v: HnLayer[] }>;
}

/** ComfyUI logs these and returns the model unpatched; the node does the same. */
export class UnsupportedActivationError extends TorchCheckpointError {}

const isTensor = (v: TorchValue): v is LoadedTensor => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Map) && v.kind === 'tensor';

function mlp(path: string, sd: TorchValue, activation: HypernetworkActivation, layerNorm: boolean, activateOutput: boolean): HnLayer[] {
  if (!(sd instanceof Map)) throw new TorchCheckpointError(path, 'hypernetwork module is not a state dict');
  const tensors = [...sd].filter(([k, v]) => typeof k === 'string' && isTensor(v)) as Array<[string, LoadedTensor]>;
  const get = (k: string) => {
    const t = sd.get(k);
    if (!t || !isTensor(t)) throw new TorchCheckpointError(path, `hypernetwork module lacks "${k}"`);
    return t;
  };
  const linears = tensors.filter(([k, v]) => k.endsWith('.weight') && v.shape.length === 2).map(([k]) => k.slice(0, -'.weight'.length));
  const norms = tensors.filter(([k, v]) => k.endsWith('.weight') && v.shape.length === 1).map(([k]) => k.slice(0, -'.weight'.length));
  if (!linears.length) throw new TorchCheckpointError(path, 'hypernetwork module has no linear layers');
  return linears.map((name, i) => {
    const w = get(`${name}.weight`);
    const last = i === linears.length - 1;
    const layer: HnLayer = {
      weight: w.data,
      shape: [w.shape[0]!, w.shape[1]!],
      bias: get(`${name}.bias`).data,
      activate: activation !== 'linear' && (!last || activateOutput),
    };
    if (layerNorm) {
      const ln = norms[i];
      if (!ln) throw new TorchCheckpointError(path, `is_layer_norm is set but layer ${name} has no LayerNorm after it`);
      layer.norm = { weight: get(`${ln}.weight`).data, bias: get(`${ln}.bias`).data };
    }
    return layer;
  });
}

/** Reads an A1111 hypernetwork file; `strength` is HypernetworkLoader's. */
export function loadHypernetwork(path: string, strength: number): HypernetworkPatch {
  const root = readTorchObject(path);
  if (!(root instanceof Map)) throw new TorchCheckpointError(path, 'not a hypernetwork (the file does not hold a dict)');
  const activation = String(root.get('activation_func') ?? 'linear');
  if (!(HYPERNETWORK_ACTIVATIONS as readonly string[]).includes(activation)) {
    throw new UnsupportedActivationError(path, `unsupported activation_func "${activation}" (known: ${HYPERNETWORK_ACTIVATIONS.join(', ')})`);
  }
  const layerNorm = root.get('is_layer_norm') === true;
  const activateOutput = root.get('activate_output') === true;
  const modules: HypernetworkPatch['modules'] = [];
  for (const [key, value] of root) {
    if (typeof key !== 'number') continue;
    if (!Array.isArray(value) || value.length < 2) throw new TorchCheckpointError(path, `entry ${key} is not a (k, v) module pair`);
    const act = activation as HypernetworkActivation;
    modules.push({ dim: key, k: mlp(path, value[0]!, act, layerNorm, activateOutput), v: mlp(path, value[1]!, act, layerNorm, activateOutput) });
  }
  if (!modules.length) throw new TorchCheckpointError(path, 'no hypernetwork modules (no integer width keys)');
  const st = statSync(path);
  return { kind: 'hypernetwork', id: `${path}:${st.size}:${st.mtimeMs}@${strength}`, strength, activation: activation as HypernetworkActivation, modules };
}

function activate(g: GraphBuilder, x: T, a: HypernetworkActivation): T {
  switch (a) {
    case 'linear': return x;
    case 'relu': return g.relu(x);
    case 'leakyrelu': return g.max(x, g.mul(x, 0.01));
    case 'elu': return g.select(g.greater(x, 0), x, g.sub(g.exp(x), 1));
    case 'swish': {
      // torch's Hardswish: x * relu6(x + 3) / 6
      const r6 = g.neg(g.max(g.neg(g.relu(g.add(x, 3))), -6));
      return g.div(g.mul(x, r6), 6);
    }
    case 'tanh': return g.tanh(x);
    case 'sigmoid': return g.sigmoid(x);
    case 'softsign': return g.div(x, g.add(g.max(x, g.neg(x)), 1));
    case 'mish': return g.mul(x, g.tanh(g.log(g.add(g.exp(x), 1))));
  }
}

function runMlp(g: GraphBuilder, x: T, layers: HnLayer[], a: HypernetworkActivation): T {
  let h = x;
  for (const l of layers) {
    h = g.linear(h, g.constant(l.weight, l.shape), g.constant(l.bias, [l.shape[0]]));
    if (l.activate) h = activate(g, h, a);
    if (l.norm) h = g.layerNorm(h, g.constant(l.norm.weight, [l.shape[0]]), g.constant(l.norm.bias, [l.shape[0]]), 1e-5);
  }
  return h;
}

/** The attention patch: (k, v) inputs (before projections) with every matching hypernetwork added. */
export function hypernetworkKv(g: GraphBuilder, patches: readonly HypernetworkPatch[], k: T, v: T): { k: T; v: T } {
  let kk = k;
  let vv = v;
  const width = k.shape[k.rank - 1];
  for (const p of patches) {
    const m = p.modules.find((x) => x.dim === width);
    if (!m) continue;
    kk = g.add(kk, g.mul(runMlp(g, kk, m.k, p.activation), p.strength));
    vv = g.add(vv, g.mul(runMlp(g, vv, m.v, p.activation), p.strength));
  }
  return { k: kk, v: vv };
}
