import { compileGraph, releaseSession, type CompiledSession, type TensorData } from '../../graph/session.js';
import { ownSession } from '../session-owners.js';
import type { WeightSet } from '../weights.js';
import type { UnetConfig } from './config.js';
import { buildUnetGraph, resAdapterTargets, skipChannels } from './unet.js';

export interface UnetCallOptions {
  /** ControlNet residuals already multiplied by strength; summed over chained ControlNets. */
  control?: { outputs: TensorData[]; middle: TensorData };
  /** Replacement weights (full checkpoint keys → PyTorch-layout data), e.g. merged adapters. */
  overrides?: ReadonlyMap<string, Float32Array>;
  /** SDXL label-embedding input [B, adm]. */
  y?: TensorData;
}

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

  /** Whether the session is compiled and its ORT state loaded (its weights already in memory). */
  sessionLoaded(): boolean {
    return this.loadedSession?.loaded ?? false;
  }

  /** The session a call needs: the ControlNet-capable one once it exists, for plain calls too. */
  session(withControl = false): Promise<CompiledSession> {
    const existing = this.sessions.get('control') ?? (withControl ? undefined : this.sessions.get('plain'));
    if (existing) return existing;
    const key = withControl ? 'control' : 'plain';
    const s = compileGraph(buildUnetGraph(this.weights, this.config, { withControl, overridable: this.overridable }));
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

  /** Releases the plain session once the ControlNet-capable one serves every call (unless it is mid-run). */
  private dropPlainSession(): void {
    const plain = this.sessions.get('plain');
    if (!plain) return;
    this.sessions.delete('plain');
    plain.then((s) => (s.busy ? undefined : releaseSession(s.hash))).catch(() => {});
  }

  /** eps prediction for x [B, C, H, W] (already c_in-scaled), timesteps [B], context [B, S, D]. */
  async eps(x: TensorData, timesteps: Float32Array, context: TensorData, opts: UnetCallOptions = {}): Promise<TensorData> {
    const feeds: Record<string, TensorData> = { x, timesteps: { data: timesteps, dims: [timesteps.length] }, context };
    if (opts.y) feeds.y = opts.y;
    if (opts.control) {
      opts.control.outputs.forEach((t, i) => (feeds[`control_${i}`] = t));
      feeds.control_middle = opts.control.middle;
    }
    const s = await this.session(Boolean(opts.control));
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
