import { compileGraph, type CompiledSession, type TensorData } from '../../graph/session.js';
import type { WeightSet } from '../weights.js';
import type { UnetConfig } from './config.js';
import { buildUnetGraph, resAdapterTargets } from './unet.js';

export interface UnetCallOptions {
  /** ControlNet residuals already multiplied by strength; summed over chained ControlNets. */
  control?: { outputs: TensorData[]; middle: TensorData };
  /** Replacement weights (full checkpoint keys → PyTorch-layout data), e.g. merged adapters. */
  overrides?: ReadonlyMap<string, Float32Array>;
  /** SDXL label-embedding input [B, adm]. */
  y?: TensorData;
}

/**
 * UNet work done by this process: session runs and the batch items they processed (one item = one latent
 * image through the whole UNet). Read by `resflow eval-resolution` for its UNet-passes-per-step column.
 */
export const unetUsage = { calls: 0, items: 0 };

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

  session(withControl: boolean): Promise<CompiledSession> {
    const key = withControl ? 'control' : 'plain';
    let s = this.sessions.get(key);
    if (!s) {
      s = compileGraph(buildUnetGraph(this.weights, this.config, { withControl, overridable: this.overridable }), { role: 'unet' });
      this.sessions.set(key, s);
      s.catch(() => this.sessions.delete(key));
    }
    return s;
  }

  /** eps prediction for x [B, C, H, W] (already c_in-scaled), timesteps [B], context [B, S, D]. */
  async eps(x: TensorData, timesteps: Float32Array, context: TensorData, opts: UnetCallOptions = {}): Promise<TensorData> {
    unetUsage.calls++;
    unetUsage.items += timesteps.length;
    const feeds: Record<string, TensorData> = { x, timesteps: { data: timesteps, dims: [timesteps.length] }, context };
    if (opts.y) feeds.y = opts.y;
    if (opts.control) {
      opts.control.outputs.forEach((t, i) => (feeds[`control_${i}`] = t));
      feeds.control_middle = opts.control.middle;
    }
    const s = await this.session(Boolean(opts.control));
    const r = await s.run(feeds, opts.overrides);
    return r.eps!;
  }
}
