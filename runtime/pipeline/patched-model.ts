/**
 * Non-destructive patched models, in the spirit of ComfyUI's ModelPatcher: a handle pairs a loaded model
 * with an ordered list of adapters and is never changed once made. `withAdapter` and `withStrength` return
 * new handles, so a LoadCheckpoint output keeps rendering unpatched in one branch of a graph while another
 * branch renders it with a ResAdapter.
 *
 * Patching never touches the model's weights or its compiled session: the merged tensors of the patched
 * keys are computed lazily per handle and fed to the session as run-time weight inputs. A strength change is
 * a new handle whose merge reuses the cached LoRA products; only making a new key patchable (a LoRA on
 * layers that are not ResAdapter targets) compiles a new session, once.
 */
import type { LoraPatch } from '../adapters/lora-format.js';
import type { AdapterApplication } from '../adapters/merge.js';
import type { TensorData } from '../graph/session.js';
import type { ClipEncodeOptions, ClipEncoding, ClipTextEncoder } from '../models/clip/index.js';
import type { UnetCallOptions, UnetModel } from '../models/unet/model.js';
import type { UnetPatch } from '../models/unet/patches.js';
import type { WeightSet } from '../models/weights.js';
import type { EpsModel } from '../sampling/types.js';
import { checkPatchFits, mergeAdapters, mergeAdaptersAsync, sharedProductCache, type LoraProductCache } from './adapter-merge.js';
import { unetEpsModel, type EpsModelOptions } from './eps-model.js';

/** One adapter as attached to a handle: what to merge, at which strength, under which name. */
export interface AppliedAdapter extends AdapterApplication {
  /** Unique within a handle; `withStrength` / `without` address adapters by it. */
  readonly id: string;
  /** For UIs and messages (file name, node title). */
  readonly label: string;
}

export type AdapterInput = AdapterApplication & { id?: string; label?: string };

/** An adapter that does not fit the model it is attached to; `key` names the offending checkpoint key. */
export class AdapterMismatchError extends Error {
  constructor(
    readonly adapter: string,
    readonly key: string,
    reason: string,
  ) {
    super(`adapter "${adapter}": ${key}: ${reason}`);
    this.name = 'AdapterMismatchError';
  }
}

export type Component = 'unet' | 'clip';

/**
 * Checks every patch and norm of `app` against the weight set, and returns the adapter with an id not
 * used by `existing`. Done at attach time so a bad adapter fails where it is applied, not mid-sampling.
 */
function attach(weights: WeightSet, component: Component, existing: readonly AppliedAdapter[], app: AdapterInput): AppliedAdapter {
  const label = app.label ?? app.id ?? `adapter ${existing.length + 1}`;
  const shapeOf = (key: string): number[] | undefined => (key.startsWith(weights.prefix) && weights.file.has(key) ? weights.file.info(key).shape : undefined);
  for (const p of app.patches) {
    if (p.component !== component) {
      throw new AdapterMismatchError(label, p.target, `LoRA module "${p.source}" patches the ${p.component === 'clip' ? 'text encoder' : 'UNet'}, not the ${component === 'clip' ? 'text encoder' : 'UNet'}`);
    }
    const shape = shapeOf(p.target);
    if (!shape) throw new AdapterMismatchError(label, p.target, `LoRA module "${p.source}" targets a weight this model does not have`);
    const why = checkPatchFits(p, shape);
    if (why) throw new AdapterMismatchError(label, p.target, `LoRA module "${p.source}": ${why}`);
  }
  for (const [key, value] of app.norms ?? []) {
    const shape = shapeOf(key);
    if (!shape) throw new AdapterMismatchError(label, key, 'replacement norm for a weight this model does not have');
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== value.length) throw new AdapterMismatchError(label, key, `replacement has ${value.length} values, the model's [${shape.join(', ')}] has ${n}`);
  }
  if (!Number.isFinite(app.strength)) throw new AdapterMismatchError(label, '-', `strength ${app.strength} is not a number`);
  if (app.normStrength !== undefined && !Number.isFinite(app.normStrength)) throw new AdapterMismatchError(label, '-', `normStrength ${app.normStrength} is not a number`);
  const taken = new Set(existing.map((a) => a.id));
  const wanted = app.id ?? label;
  let id = wanted;
  // The same file may be stacked twice (ComfyUI allows it); each copy still needs its own address.
  for (let n = 2; taken.has(id); n++) id = `${wanted}#${n}`;
  return Object.freeze({
    id,
    label,
    patches: app.patches,
    strength: app.strength,
    ...(app.norms ? { norms: app.norms } : {}),
    ...(app.normStrength === undefined ? {} : { normStrength: app.normStrength }),
  });
}

function replaceStrength(list: readonly AppliedAdapter[], id: string, strength: number, normStrength?: number): AppliedAdapter[] {
  const i = list.findIndex((a) => a.id === id);
  if (i < 0) throw new Error(`no adapter "${id}" on this model (have: ${list.map((a) => a.id).join(', ') || 'none'})`);
  if (!Number.isFinite(strength)) throw new Error(`adapter "${id}": strength ${strength} is not a number`);
  const next = [...list];
  const cur = list[i]!;
  next[i] = Object.freeze({ ...cur, strength, ...(normStrength === undefined ? {} : { normStrength }) });
  return next;
}

/** Every key the adapters write, whatever their strength (the session's patchable set must not depend on it). */
function touchedKeys(adapters: readonly AdapterApplication[]): Set<string> {
  const keys = new Set<string>();
  for (const a of adapters) {
    for (const p of a.patches) keys.add(p.target);
    for (const k of a.norms?.keys() ?? []) keys.add(k);
  }
  return keys;
}

/** Shared by both handle kinds: the lazily merged, memoised override map. */
export abstract class PatchedHandle<Self> {
  private merged: Map<string, Float32Array> | undefined;

  readonly adapters: readonly AppliedAdapter[];

  protected constructor(
    adapters: readonly AppliedAdapter[],
    protected readonly cache: LoraProductCache,
  ) {
    // Frozen so that no holder of a handle can change what another branch renders.
    this.adapters = Object.isFrozen(adapters) ? adapters : Object.freeze(adapters);
  }

  protected abstract get weights(): WeightSet;
  protected abstract make(adapters: readonly AppliedAdapter[]): Self;
  protected abstract component(): Component;
  protected abstract patchable(key: string): boolean;
  protected abstract widen(keys: string[]): void;

  /** A new handle with `app` stacked after the current adapters; this handle is unchanged. */
  withAdapter(app: AdapterInput): Self {
    return this.make([...this.adapters, attach(this.weights, this.component(), this.adapters, app)]);
  }

  /** A new handle with one adapter's strength (and optionally its norm blend) changed: no recompile. */
  withStrength(id: string, strength: number, normStrength?: number): Self {
    return this.make(replaceStrength(this.adapters, id, strength, normStrength));
  }

  /** A new handle without the adapter `id`. */
  without(id: string): Self {
    if (!this.adapters.some((a) => a.id === id)) throw new Error(`no adapter "${id}" on this model`);
    return this.make(this.adapters.filter((a) => a.id !== id));
  }

  /** Whether any adapter changes a weight (adapters at strength 0 leave the model as it is). */
  get isPatched(): boolean {
    return this.adapters.some((a) => a.strength !== 0 && (a.patches.length > 0 || ((a.norms?.size ?? 0) > 0 && a.normStrength !== 0)));
  }

  /** Checkpoint keys the adapters touch. */
  patchedKeys(): string[] {
    return [...touchedKeys(this.adapters)];
  }

  /**
   * Makes every key the adapters touch patchable on the model, at any strength, so that moving a strength
   * away from 0 later never compiles a session.
   */
  ensurePatchable(): void {
    const missing = this.patchedKeys().filter((k) => !this.patchable(k));
    if (missing.length) this.widen(missing);
  }

  /**
   * The merged weights of the patched keys (full checkpoint keys, PyTorch layout), or undefined when
   * nothing changes. Computed on first use and kept for the life of this handle.
   */
  overrides(): ReadonlyMap<string, Float32Array> | undefined {
    if (this.adapters.length === 0) return undefined;
    this.ensurePatchable();
    this.merged ??= mergeAdapters(this.baseRead(), this.adapters, this.cache);
    return this.merged.size ? this.merged : undefined;
  }

  /**
   * Merges now, with large LoRA products on ORT's threads (a LoRA on every layer: seconds instead of a
   * minute). Loader nodes await it; `overrides()` then returns the result.
   */
  async prepare(): Promise<void> {
    if (this.adapters.length === 0 || this.merged) return;
    this.ensurePatchable();
    this.merged = await mergeAdaptersAsync(this.baseRead(), this.adapters, this.cache);
  }

  private baseRead(): (key: string) => Float32Array | undefined {
    const file = this.weights.file;
    return (k) => (file.has(k) ? this.cache.baseTensor(file, k, () => file.readFloat32(k)) : undefined);
  }
}

/** A UNet with adapters: the value a MODEL socket carries. */
export class PatchedUnet extends PatchedHandle<PatchedUnet> {
  private constructor(
    readonly base: UnetModel,
    adapters: readonly AppliedAdapter[],
    cache: LoraProductCache,
    /** Forward patches (FreeU, Deep Shrink, HyperTile) in the order they were applied. */
    readonly forwardPatches: readonly UnetPatch[] = [],
  ) {
    super(adapters, cache);
  }

  /** A new handle that also runs `patch` in the UNet forward; this handle is unchanged. */
  withForwardPatch(patch: UnetPatch): PatchedUnet {
    return new PatchedUnet(this.base, this.adapters, this.cache, Object.freeze([...this.forwardPatches, Object.freeze({ ...patch })]));
  }

  /** The unpatched handle of a loaded UNet. */
  static of(base: UnetModel, cache: LoraProductCache = sharedProductCache): PatchedUnet {
    return new PatchedUnet(base, [], cache);
  }

  protected get weights(): WeightSet {
    return this.base.weights;
  }
  protected make(adapters: readonly AppliedAdapter[]): PatchedUnet {
    return new PatchedUnet(this.base, adapters, this.cache, this.forwardPatches);
  }
  protected component(): Component {
    return 'unet';
  }
  protected patchable(key: string): boolean {
    return this.base.isPatchable(key);
  }
  protected widen(keys: string[]): void {
    this.base.addOverridable(keys);
  }

  /** `UnetModel.eps` options carrying this handle's weights, merged with caller overrides (those win). */
  callOptions(extra: UnetCallOptions = {}): UnetCallOptions {
    const mine = this.overrides();
    if (!mine) return extra;
    const overrides = extra.overrides ? new Map([...mine, ...extra.overrides]) : mine;
    return { ...extra, overrides };
  }

  eps(x: TensorData, timesteps: Float32Array, context: TensorData, opts: UnetCallOptions = {}): Promise<TensorData> {
    return this.base.eps(x, timesteps, context, this.callOptions(opts));
  }

  /** The sampler's EpsModel for this handle (merges now, so sampling steps only feed the tensors). */
  epsModel(opts: EpsModelOptions = {}): EpsModel {
    const { overrides } = this.callOptions(opts.overrides ? { overrides: opts.overrides } : {});
    const withPatches = this.forwardPatches.length ? { ...opts, patches: [...this.forwardPatches, ...(opts.patches ?? [])] } : opts;
    return unetEpsModel(this.base, overrides ? { ...withPatches, overrides } : withPatches);
  }
}

/** A text encoder with adapters and a CLIP skip: the value a CLIP socket carries. */
export class PatchedClip extends PatchedHandle<PatchedClip> {
  private constructor(
    readonly base: ClipTextEncoder,
    adapters: readonly AppliedAdapter[],
    readonly clipSkip: number,
    cache: LoraProductCache,
  ) {
    super(adapters, cache);
  }

  static of(base: ClipTextEncoder, clipSkip = 1, cache: LoraProductCache = sharedProductCache): PatchedClip {
    return new PatchedClip(base, [], clipSkip, cache);
  }

  protected get weights(): WeightSet {
    return this.base.weights;
  }
  protected make(adapters: readonly AppliedAdapter[]): PatchedClip {
    return new PatchedClip(this.base, adapters, this.clipSkip, this.cache);
  }
  protected component(): Component {
    return 'clip';
  }
  protected patchable(key: string): boolean {
    return this.base.isPatchable(key);
  }
  protected widen(keys: string[]): void {
    this.base.addOverridable(keys);
  }

  /** CLIPSetLastLayer: same adapters, other layer. */
  withClipSkip(clipSkip: number): PatchedClip {
    return new PatchedClip(this.base, this.adapters, clipSkip, this.cache);
  }

  private options(extra: ClipEncodeOptions = {}): ClipEncodeOptions {
    const o: ClipEncodeOptions = { clipSkip: this.clipSkip, ...extra };
    const mine = this.overrides();
    if (mine) o.overrides = extra.overrides ? new Map([...mine, ...extra.overrides]) : mine;
    return o;
  }

  encodeTokens(tokens: number[][], weights?: number[][], opts: ClipEncodeOptions = {}): Promise<ClipEncoding> {
    return this.base.encodeTokens(tokens, weights, this.options(opts));
  }

  run(windows: number[][], opts: ClipEncodeOptions & { debug?: boolean } = {}): Promise<Record<string, TensorData>> {
    return this.base.run(windows, { ...this.options(opts), ...(opts.debug === undefined ? {} : { debug: opts.debug }) });
  }
}

/** Splits parsed LoRA patches by the model part they patch. */
export function splitPatches(patches: readonly LoraPatch[]): { unet: LoraPatch[]; clip: LoraPatch[] } {
  return { unet: patches.filter((p) => p.component === 'unet'), clip: patches.filter((p) => p.component === 'clip') };
}
