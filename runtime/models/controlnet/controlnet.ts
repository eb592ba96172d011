import { GraphBuilder } from '../../graph/builder.js';
import type { Graph } from '../../graph/ir.js';
import { compileGraph, type CompiledSession, type TensorData } from '../../graph/session.js';
import { SafetensorsFile } from '../../safetensors/reader.js';
import { WeightSet } from '../weights.js';
import { type BlockContext, bind, downsample, resBlock, spatialTransformer, timeEmbed, timestepEmbedding } from '../unet/blocks.js';
import { headsFor, inferUnetConfig, type UnetConfig, type UnetConfigOverrides } from '../unet/config.js';

/** Positions (among the hint block's convs) that downsample: the released cldm hint block halves 3 times. */
const HINT_STRIDE2 = new Set([2, 4, 6]);

/**
 * ControlNet (LDM cldm): a copy of the UNet's input half fed with a hint image; zero convs produce one residual
 * per UNet skip connection plus one for the middle block.
 */
export function buildControlNetGraph(w: WeightSet, cfg: UnetConfig): Graph {
  const g = new GraphBuilder();
  const c: BlockContext = { g, w, overridable: () => false, groups: cfg.groupNormGroups };
  const x = g.input('x', 'float32', ['B', cfg.inChannels, 'H', 'W']);
  const timesteps = g.input('timesteps', 'float32', ['B']);
  const context = g.input('context', 'float32', ['B', 'S', cfg.contextDim]);
  const hintCh = w.shape('input_hint_block.0.weight')[1]!;
  const hint = g.input('hint', 'float32', ['B', hintCh, 'HH', 'HW']);
  const emb = timeEmbed(c, timestepEmbedding(g, timesteps, cfg.modelChannels));
  const embAct = g.silu(emb);
  if (cfg.admInChannels) throw new Error(`${w.file.path}: SDXL ControlNets are not supported yet`);

  const hintIdx = w.names()
    .map((n) => /^input_hint_block\.(\d+)\.weight$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
  let gh = hint;
  hintIdx.forEach((idx, k) => {
    gh = g.conv2d(gh, bind(c, `input_hint_block.${idx}.weight`), bind(c, `input_hint_block.${idx}.bias`), {
      padding: 1,
      stride: HINT_STRIDE2.has(k) ? 2 : 1,
    });
    if (k < hintIdx.length - 1) gh = g.silu(gh);
  });

  let h = x;
  cfg.inputBlocks.forEach((blk, i) => {
    const name = `input_blocks.${i}`;
    if (blk.kind === 'conv_in') {
      h = g.conv2d(h, bind(c, `${name}.0.weight`), bind(c, `${name}.0.bias`), { padding: 1 });
      h = g.add(h, gh);
    } else if (blk.kind === 'down') h = downsample(c, h, `${name}.0`);
    else {
      h = resBlock(c, h, embAct, `${name}.0`);
      if (blk.attn) h = spatialTransformer(c, h, context, `${name}.1`, cfg.inputTransformerDepth[i]!, headsFor(cfg, blk.outCh), cfg.useLinearInTransformer);
    }
    g.output(`control_${i}`, g.conv2d(h, bind(c, `zero_convs.${i}.0.weight`), bind(c, `zero_convs.${i}.0.bias`)));
  });
  h = resBlock(c, h, embAct, 'middle_block.0');
  if (cfg.middleTransformerDepth > 0) {
    h = spatialTransformer(c, h, context, 'middle_block.1', cfg.middleTransformerDepth, headsFor(cfg, h.shape[1] as number), cfg.useLinearInTransformer);
    h = resBlock(c, h, embAct, 'middle_block.2');
  }
  g.output('control_middle', g.conv2d(h, bind(c, 'middle_block_out.0.weight'), bind(c, 'middle_block_out.0.bias')));
  return g.graph;
}

export interface ControlResiduals {
  /** One per UNet skip connection, in input-block order. */
  outputs: TensorData[];
  middle: TensorData;
}

export class ControlNet {
  /** Shown in errors and the UI (the sampler treats ControlNets as opaque handles with a name). */
  get name(): string {
    return this.path.split(/[\\/]/).pop() ?? this.path;
  }

  private constructor(
    readonly path: string,
    readonly config: UnetConfig,
    private readonly session: CompiledSession,
  ) {}

  /** Loads a ControlNet file with `control_model.` keys or bare keys (both occur in the wild). */
  static async load(path: string, overrides: UnetConfigOverrides = {}): Promise<ControlNet> {
    const file = SafetensorsFile.open(path);
    const prefix = file.has('control_model.input_hint_block.0.weight') ? 'control_model.' : '';
    if (!file.has(`${prefix}input_hint_block.0.weight`)) {
      throw new Error(`${path}: not a ControlNet (no input_hint_block.0.weight under "control_model." or bare keys)`);
    }
    return ControlNet.fromWeights(path, new WeightSet(file, prefix), overrides);
  }

  /** A ControlNet over weights already opened (or derived, e.g. a diff ControlNet added to its UNet). */
  static async fromWeights(path: string, w: WeightSet, overrides: UnetConfigOverrides = {}): Promise<ControlNet> {
    const cfg = inferUnetConfig(w, overrides, w.file.metadata);
    const session = await compileGraph(buildControlNetGraph(w, cfg), { role: 'controlnet' });
    return new ControlNet(path, cfg, session);
  }

  /** Raw residuals (before strength) for UNet inputs x (already c_in-scaled), timesteps, context and hint [B,3,8h,8w]. */
  async residuals(x: TensorData, timesteps: TensorData, context: TensorData, hint: TensorData): Promise<ControlResiduals> {
    const r = await this.session.run({ x, timesteps, context, hint });
    const outputs = this.config.inputBlocks.map((_, i) => r[`control_${i}`]!);
    return { outputs, middle: r.control_middle! };
  }
}
