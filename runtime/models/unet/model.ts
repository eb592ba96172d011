import { compileGraph, type CompiledSession, type TensorData } from '../../graph/session.js';
import type { WeightSet } from '../weights.js';
import type { UnetConfig } from './config.js';
import { buildUnetGraph, resAdapterTargets } from './unet.js';
import { planPatchedCall, unetLayout, variantKey, type UnetLayout, type UnetPatchCall, type UnetPatchVariant } from './patches.js';

export interface UnetCallOptions {
  /** ControlNet residuals already multiplied by strength; summed over chained ControlNets. */
  control?: { outputs: TensorData[]; middle: TensorData };
  /** Replacement weights (full checkpoint keys → PyTorch-layout data), e.g. merged adapters. */
  overrides?: ReadonlyMap<string, Float32Array>;
  /** SDXL label-embedding input [B, adm]. */
  y?: TensorData;
  /** Forward patches (FreeU, Deep Shrink, HyperTile) with this call's sigma and random source. */
  patch?: UnetPatchCall;
  /** Tensors added to the output of input blocks (T2I-Adapter features, strength applied), by block index. */
  inputControl?: ReadonlyMap<number, TensorData>;
}

/**
 * A loaded UNet: compiles lazily one session without and one with ControlNet inputs. Adapter targets stay
 * graph inputs, so applying or re-weighting adapters never rebuilds the session.
 */
export class UnetModel {
  private sessions = new Map<string, Promise<CompiledSession>>();
  readonly overridable: Set<string>;

  constructor(
    readonly weights: WeightSet,
    readonly config: UnetConfig,
    extraOverridable: Iterable<string> = [],
  ) {
    this.overridable = resAdapterTargets(weights);
    for (const k of extraOverridable) this.overridable.add(k);
  }

  /** Full checkpoint key for a UNet-relative name. */
  key(name: string): string {
    return this.weights.prefix + name;
  }

  /** Whether a full checkpoint key can be patched without rebuilding. */
  isPatchable(fullKey: string): boolean {
    return fullKey.startsWith(this.weights.prefix) && this.overridable.has(fullKey.slice(this.weights.prefix.length));
  }

  /** Makes more weights patchable (a LoRA touching other layers): the next call compiles a new session. */
  addOverridable(fullKeys: Iterable<string>): void {
    let changed = false;
    for (const k of fullKeys) {
      const rel = k.slice(this.weights.prefix.length);
      if (k.startsWith(this.weights.prefix) && !this.overridable.has(rel)) {
        this.overridable.add(rel);
        changed = true;
      }
    }
    if (changed) this.sessions.clear();
  }

  private layoutCache: UnetLayout | undefined;

  /** Block facts the forward patches plan with (read off the weights once). */
  get layout(): UnetLayout {
    this.layoutCache ??= unetLayout(this.weights, this.config);
    return this.layoutCache;
  }

  /** The plain session, or one variant of the patched graph (a session per distinct structure). */
  session(withControl: boolean, patches?: UnetPatchVariant, inputControlBlocks: readonly number[] = []): Promise<CompiledSession> {
    const key = (withControl ? 'control' : 'plain') + (patches ? `|${variantKey(patches)}` : '') + (inputControlBlocks.length ? `|in:${inputControlBlocks.join(',')}` : '');
    let s = this.sessions.get(key);
    if (!s) {
      s = compileGraph(buildUnetGraph(this.weights, this.config, { withControl, overridable: this.overridable, ...(patches ? { patches } : {}), ...(inputControlBlocks.length ? { inputControlBlocks } : {}) }), { role: 'unet' });
      this.sessions.set(key, s);
      s.catch(() => this.sessions.delete(key));
    }
    return s;
  }

  /** eps prediction for x [B, C, H, W] (already c_in-scaled), timesteps [B], context [B, S, D]. */
  async eps(x: TensorData, timesteps: Float32Array, context: TensorData, opts: UnetCallOptions = {}): Promise<TensorData> {
    const feeds: Record<string, TensorData> = { x, timesteps: { data: timesteps, dims: [timesteps.length] }, context };
    if (opts.y) feeds.y = opts.y;
    if (opts.control) {
      opts.control.outputs.forEach((t, i) => (feeds[`control_${i}`] = t));
      feeds.control_middle = opts.control.middle;
    }
    let variant: UnetPatchVariant | undefined;
    if (opts.patch?.patches.length) {
      const plan = planPatchedCall(this.config, this.layout, x.dims, opts.patch);
      const v = plan.variant;
      // A patch set that does nothing at this call (Deep Shrink outside its window) runs the plain session.
      if (v.freeu || v.shrink || v.tiled.length || v.hypernetworks.length) variant = v;
      Object.assign(feeds, plan.feeds);
    }
    const inBlocks = opts.inputControl ? [...opts.inputControl.keys()].sort((a, b) => a - b) : [];
    for (const i of inBlocks) feeds[`control_in_${i}`] = opts.inputControl!.get(i)!;
    const s = await this.session(Boolean(opts.control), variant, inBlocks);
    const r = await s.run(feeds, opts.overrides);
    return r.eps!;
  }
}
