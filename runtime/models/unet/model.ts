import { compileGraph, isCompiled, releaseSession, type CompiledSession, type TensorData } from '../../graph/session.js';
import { ownSession } from '../session-owners.js';
import type { WeightSet } from '../weights.js';
import type { UnetConfig } from './config.js';
import { buildUnetGraph, resAdapterTargets, skipChannels } from './unet.js';
import { planPatchedCall, unetLayout, variantKey, type UnetLayout, type UnetPatchCall, type UnetPatchVariant } from './patches.js';
import type { Precision } from '../../graph/precision.js';

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
 * UNet work done by this process: session runs and the batch items they processed (one item = one latent
 * image through the whole UNet). Read by `resflow eval-resolution` for its UNet-passes-per-step column.
 */
export const unetUsage = { calls: 0, items: 0 };

/**
 * A loaded UNet holding one session at a time. Plain runs use a session without ControlNet inputs until the
 * first ControlNet run; from then on one session with residual inputs serves both (plain calls feed zeros,
 * which is exact) and the plain session is released, so a ControlNet never keeps a second full UNet in memory
 * and users who never use one pay nothing for the extra adds. Adapter targets stay graph inputs, so applying
 * or re-weighting adapters never rebuilds the session.
 */
export class UnetModel {
  private sessions = new Map<string, Promise<CompiledSession>>();
  private zeroControl: { key: string; feeds: Record<string, TensorData> } | undefined;
  private loadedSession: CompiledSession | undefined;
  private readonly withResiduals = new WeakSet<CompiledSession>();
  readonly overridable: Set<string>;
  /** The loader's weight_dtype choice; unset follows the process default (setDefaultPrecision / --precision). */
  precision: Precision | undefined;

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

  /** Whether the session is compiled and its ORT state loaded (its weights already in memory). */
  sessionLoaded(): boolean {
    return this.loadedSession?.loaded ?? false;
  }

  /**
   * The session a call needs. Unpatched calls use the ControlNet-capable session once it exists, for plain calls
   * too; patched graphs (FreeU, Deep Shrink, HyperTile, hypernetworks, T2I inputs) get a session per structure.
   */
  session(withControl = false, patches?: UnetPatchVariant, inputControlBlocks: readonly number[] = []): Promise<CompiledSession> {
    if (patches || inputControlBlocks.length) {
      const key = (withControl ? 'control' : 'plain') + (patches ? `|${variantKey(patches)}` : '') + (inputControlBlocks.length ? `|in:${inputControlBlocks.join(',')}` : '');
      let v = this.sessions.get(key);
      if (!v) {
        v = compileGraph(buildUnetGraph(this.weights, this.config, { withControl, overridable: this.overridable, ...(patches ? { patches } : {}), ...(inputControlBlocks.length ? { inputControlBlocks } : {}) }), { role: 'unet', ...this.precisionOption() });
        this.sessions.set(key, v);
        v.then((done) => ownSession(this, done)).catch(() => this.sessions.delete(key));
      }
      return v;
    }
    const existing = this.sessions.get('control') ?? (withControl ? undefined : this.sessions.get('plain'));
    if (existing) return existing;
    const key = withControl ? 'control' : 'plain';
    const s = compileGraph(buildUnetGraph(this.weights, this.config, { withControl, overridable: this.overridable }), { role: 'unet', ...this.precisionOption() });
    this.sessions.set(key, s);
    s.then((done) => {
      this.loadedSession = done;
      ownSession(this, done);
      if (withControl) {
        this.withResiduals.add(done);
        this.dropPlainSession();
      }
    }).catch(() => this.sessions.delete(key));
    return s;
  }

  /** Whether the plain session is compiled already (here or in the disk cache): a first call reads no weight. */
  plainSessionReady(): boolean {
    return this.sessions.has('plain') || this.sessions.has('control') || isCompiled(buildUnetGraph(this.weights, this.config, { withControl: false, overridable: this.overridable }), { role: 'unet', ...this.precisionOption() });
  }

  private precisionOption(): { precision?: Precision } {
    return this.precision ? { precision: this.precision } : {};
  }

  /** Releases the plain session once the ControlNet-capable one serves every call (unless it is mid-run). */
  private dropPlainSession(): void {
    const plain = this.sessions.get('plain');
    if (!plain) return;
    this.sessions.delete('plain');
    plain.then((s) => (s.busy ? undefined : releaseSession(s.hash))).catch(() => {});
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
    if (!opts.control && this.withResiduals.has(s)) Object.assign(feeds, this.zeroResiduals(x.dims));
    const r = await s.run(feeds, opts.overrides);
    return r.eps!;
  }

  /** Zero ControlNet residuals for an x of these dims: the skip shapes (stride-2 convs round up), then the middle. */
  private zeroResiduals(xDims: readonly number[]): Record<string, TensorData> {
    const key = xDims.join('x');
    if (this.zeroControl?.key === key) return this.zeroControl.feeds;
    const [b = 1, , height = 1, width = 1] = xDims;
    let h = height;
    let w = width;
    const shapes: number[][] = this.config.inputBlocks.map((blk, i) => {
      if (blk.kind === 'down') (h = Math.ceil(h / 2)), (w = Math.ceil(w / 2));
      return [b, skipChannels(this.config, i), h, w];
    });
    shapes.push([b, skipChannels(this.config, this.config.inputBlocks.length - 1), h, w]);
    const largest = Math.max(...shapes.map((s) => s.reduce((x, y) => x * y, 1)));
    // One zero buffer backs every residual (read-only inputs), sized for the largest.
    const zeros = new Float32Array(largest);
    const feeds: Record<string, TensorData> = {};
    shapes.forEach((dims, i) => {
      const n = dims.reduce((x, y) => x * y, 1);
      feeds[i < shapes.length - 1 ? `control_${i}` : 'control_middle'] = { data: zeros.subarray(0, n), dims };
    });
    this.zeroControl = { key, feeds };
    return feeds;
  }
}
