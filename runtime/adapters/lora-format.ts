/**
 * Reads LoRA files (kohya, peft, older diffusers layouts) into patches addressed by checkpoint key.
 *
 * Every tensor must land on a real layer of the given model with a shape the merge can use: a LoRA that
 * only half-applies changes the picture silently, so anything unmatched is an error naming the LoRA key.
 */
import { SafetensorsFile } from '../safetensors/index.js';
import { UNET_PREFIX, inferUnetArch, type KeyShapeTable, type Shape } from './arch-tables.js';
import { textEncoderModules, unetDiffusersModulesToLdm, type TextEncoderSlot } from './keymap.js';

export interface LoraPatch {
  /** Full checkpoint key of the patched weight, e.g. `model.diffusion_model.input_blocks.3.0.op.weight`. */
  target: string;
  up: Float32Array;
  upShape: number[];
  down: Float32Array;
  downShape: number[];
  /** LoCon/CP-decomposed convs: [rank, rank, kh, kw] between a 1×1 down and the up projection. */
  mid?: Float32Array;
  midShape?: number[];
  /** undefined = the file stores no alpha: the delta is applied unscaled. */
  alpha: number | undefined;
  rank: number;
  /** Set when the target fuses several projections (OpenCLIP q/k/v): the patch covers only these rows. */
  rows?: { start: number; count: number };
  component: 'unet' | 'clip';
  /** The LoRA module name as written in the file, for messages. */
  source: string;
}

export type LoraFormat = 'kohya' | 'peft' | 'diffusers';

export interface ParsedLora {
  patches: LoraPatch[];
  formats: LoraFormat[];
}

/** What the parser needs from a tensor file; SafetensorsFile provides it, tests can fake it. */
export interface TensorSource {
  keys(): string[];
  info(name: string): { shape: readonly number[] };
  readFloat32(name: string): Float32Array;
}

export class LoraError extends Error {
  constructor(
    readonly key: string,
    readonly reason: string,
    file?: string,
  ) {
    super(`${file ? `${file}: ` : ''}LoRA key "${key}": ${reason}`);
    this.name = 'LoraError';
  }
}

type Role = 'down' | 'up' | 'mid' | 'alpha';

const ROLE_PATTERNS: ReadonlyArray<[RegExp, Role, LoraFormat]> = [
  [/^(.+)\.lora_down\.weight$/, 'down', 'kohya'],
  [/^(.+)\.lora_up\.weight$/, 'up', 'kohya'],
  [/^(.+)\.lora_mid\.weight$/, 'mid', 'kohya'],
  [/^(.+)\.lora_A(?:\.default)?\.weight$/, 'down', 'peft'],
  [/^(.+)\.lora_B(?:\.default)?\.weight$/, 'up', 'peft'],
  [/^(.+)\.lora(?:_linear_layer)?\.down\.weight$/, 'down', 'diffusers'],
  [/^(.+)\.lora(?:_linear_layer)?\.up\.weight$/, 'up', 'diffusers'],
  [/^(.+)\.alpha$/, 'alpha', 'kohya'],
];

/** diffusers attention processors stored one LoRA per projection under `processor.to_q_lora` etc. */
const PROCESSOR_PATTERN = /^(.+)\.processor\.(to_[qkv]|to_out)_lora\.(down|up)\.weight$/;

function classify(key: string): { module: string; role: Role; format: LoraFormat } | undefined {
  const p = PROCESSOR_PATTERN.exec(key);
  if (p) {
    const proj = p[2] === 'to_out' ? 'to_out.0' : p[2]!;
    return { module: `${p[1]}.${proj}`, role: p[3] as Role, format: 'diffusers' };
  }
  for (const [re, role, format] of ROLE_PATTERNS) {
    const m = re.exec(key);
    if (m) return { module: m[1]!, role, format };
  }
  return undefined;
}

interface Target {
  key: string;
  rows?: { start: number; count: number };
}

/** Name indexes for one model table, built once per parse. */
class ModelIndex {
  /** UNet modules by dotted path: LDM (`input_blocks.3.0.op`) and diffusers (`down_blocks.0.downsamplers.0.conv`). */
  readonly unet = new Map<string, Target>();
  /** The same with every `.` replaced by `_`, as kohya writes them; undefined marks an ambiguous name. */
  readonly unetKohya = new Map<string, Target | undefined>();
  readonly te = new Map<TextEncoderSlot, Map<string, Target>>([
    ['te1', new Map()],
    ['te2', new Map()],
  ]);
  readonly teKohya = new Map<TextEncoderSlot, Map<string, Target>>([
    ['te1', new Map()],
    ['te2', new Map()],
  ]);

  constructor(readonly table: KeyShapeTable) {
    for (const key of table.keys()) {
      if (key.startsWith(UNET_PREFIX) && key.endsWith('.weight')) {
        this.addUnet(key.slice(UNET_PREFIX.length, -'.weight'.length), { key });
      }
    }
    const arch = inferUnetArch(table);
    if (arch) {
      for (const [diffusers, ldm] of unetDiffusersModulesToLdm(arch)) {
        const key = `${UNET_PREFIX}${ldm}.weight`;
        if (table.has(key)) this.addUnet(diffusers, { key });
      }
    }
    for (const m of textEncoderModules(table)) {
      const t: Target = m.rows ? { key: m.target, rows: m.rows } : { key: m.target };
      this.te.get(m.slot)!.set(m.hfPath, t);
      this.teKohya.get(m.slot)!.set(m.hfPath.replace(/\./g, '_'), t);
    }
  }

  private addUnet(path: string, t: Target): void {
    this.unet.set(path, t);
    const k = path.replace(/\./g, '_');
    // Underscores make some dotted names collide; such a name cannot be resolved safely.
    this.unetKohya.set(k, this.unetKohya.has(k) && this.unetKohya.get(k)?.key !== t.key ? undefined : t);
  }

  /** Resolves a LoRA module name, or returns why it cannot be. */
  resolve(module: string): Target | string {
    const kohya = /^lora_(unet|te|te1|te2)_(.+)$/.exec(module);
    if (kohya) {
      const [, part, rest] = kohya;
      if (part === 'unet') {
        if (!this.unetKohya.has(rest!)) return 'no UNet layer of this model has that name';
        return this.unetKohya.get(rest!) ?? 'the name is ambiguous once dots become underscores';
      }
      const slot: TextEncoderSlot = part === 'te2' ? 'te2' : 'te1';
      return this.teKohya.get(slot)!.get(rest!) ?? `no ${slot === 'te2' ? 'second' : 'first'} text-encoder layer of this model has that name`;
    }
    const path = module.replace(/^base_model\.model\./, '');
    const te = /^(text_encoder|text_encoder_2)\.(.+)$/.exec(path);
    if (te) {
      const slot: TextEncoderSlot = te[1] === 'text_encoder_2' ? 'te2' : 'te1';
      return this.te.get(slot)!.get(te[2]!) ?? 'no text-encoder layer of this model has that name';
    }
    const unetPath = path.replace(/^(?:unet|model\.diffusion_model|diffusion_model)\./, '');
    return this.unet.get(unetPath) ?? 'no UNet layer of this model has that name';
  }
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

interface Group {
  module: string;
  keys: Partial<Record<Role, string>>;
}

/**
 * Parses a LoRA file (path, opened SafetensorsFile or any TensorSource) into patches for the model whose
 * checkpoint key→shape table is `model`. Throws LoraError naming the first LoRA key that does not fit.
 */
export function parseLora(source: string | TensorSource, model: KeyShapeTable): ParsedLora {
  const file = typeof source === 'string' ? SafetensorsFile.open(source) : source;
  const fileName = typeof source === 'string' ? source : (source as { path?: string }).path;
  const fail = (key: string, reason: string): never => {
    throw new LoraError(key, reason, fileName);
  };

  const groups = new Map<string, Group>();
  const formats = new Set<LoraFormat>();
  for (const key of file.keys()) {
    const c = classify(key);
    if (!c) {
      fail(key, 'not a LoRA tensor this loader understands (expected lora_down/lora_up/alpha, lora_A/lora_B or lora.down/lora.up weights)');
      continue;
    }
    let g = groups.get(c.module);
    if (!g) groups.set(c.module, (g = { module: c.module, keys: {} }));
    if (g.keys[c.role]) fail(key, `duplicates ${g.keys[c.role]} for module ${c.module}`);
    g.keys[c.role] = key;
    if (c.role !== 'alpha') formats.add(c.format);
  }

  const index = new ModelIndex(model);
  const patches: LoraPatch[] = [];
  for (const g of groups.values()) {
    const anyKey = g.keys.down ?? g.keys.up ?? g.keys.mid ?? g.keys.alpha!;
    if (!g.keys.down || !g.keys.up) {
      fail(anyKey, `module "${g.module}" has no ${g.keys.down ? 'up (lora_up / lora_B)' : 'down (lora_down / lora_A)'} weight`);
    }
    const downKey = g.keys.down!;
    const upKey = g.keys.up!;
    const target = index.resolve(g.module);
    if (typeof target === 'string') fail(anyKey, target);
    const { key: targetKey, rows } = target as Target;
    const wShape = model.get(targetKey)!;
    const downShape = [...file.info(downKey).shape];
    const upShape = [...file.info(upKey).shape];
    const midShape = g.keys.mid ? [...file.info(g.keys.mid).shape] : undefined;
    checkShapes({ downKey, upKey, midKey: g.keys.mid, downShape, upShape, midShape, targetKey, wShape, rows, fail });

    let alpha: number | undefined;
    if (g.keys.alpha) {
      const a = file.readFloat32(g.keys.alpha);
      if (a.length !== 1) fail(g.keys.alpha, `alpha must be a scalar, has shape ${fmt(file.info(g.keys.alpha).shape)}`);
      alpha = a[0]!;
      if (!Number.isFinite(alpha)) fail(g.keys.alpha, `alpha is ${alpha}`);
    }
    const patch: LoraPatch = {
      target: targetKey,
      up: file.readFloat32(upKey),
      upShape,
      down: file.readFloat32(downKey),
      downShape,
      alpha,
      rank: downShape[0]!,
      component: targetKey.startsWith(UNET_PREFIX) ? 'unet' : 'clip',
      source: g.module,
    };
    if (g.keys.mid) {
      patch.mid = file.readFloat32(g.keys.mid);
      patch.midShape = midShape;
    }
    if (rows) patch.rows = rows;
    patches.push(patch);
  }
  return { patches, formats: [...formats] };
}

function checkShapes(a: {
  downKey: string;
  upKey: string;
  midKey: string | undefined;
  downShape: number[];
  upShape: number[];
  midShape: number[] | undefined;
  targetKey: string;
  wShape: Shape;
  rows: { start: number; count: number } | undefined;
  fail: (key: string, reason: string) => never;
}): void {
  const { downShape, upShape, midShape, wShape, rows, fail } = a;
  const layer = `"${a.targetKey}" ${fmt(wShape)}${rows ? ` rows ${rows.start}..${rows.start + rows.count - 1}` : ''}`;
  if (wShape.length < 2) fail(a.downKey, `target ${layer} is not a linear or conv weight`);
  if (downShape.length < 2) fail(a.downKey, `down weight has shape ${fmt(downShape)}, expected [rank, in, ...]`);
  if (upShape.length < 2) fail(a.upKey, `up weight has shape ${fmt(upShape)}, expected [out, rank, ...]`);
  const rank = downShape[0]!;
  if (rank < 1) fail(a.downKey, 'rank is 0');
  const outRows = rows ? rows.count : wShape[0]!;
  if (upShape[0] !== outRows) fail(a.upKey, `up weight ${fmt(upShape)} has ${upShape[0]} outputs but layer ${layer} has ${outRows}`);
  if (numel(upShape.slice(1)) !== rank) fail(a.upKey, `up weight ${fmt(upShape)} does not match rank ${rank} of the down weight ${fmt(downShape)}`);
  const inner = numel(wShape.slice(1));
  if (midShape) {
    if (midShape.length !== 4 || midShape[0] !== rank || midShape[1] !== rank) {
      fail(a.midKey!, `mid weight ${fmt(midShape)} should be [${rank}, ${rank}, kh, kw]`);
    }
    if (numel(downShape.slice(1)) * midShape[2]! * midShape[3]! !== inner) {
      fail(a.midKey!, `down ${fmt(downShape)} with mid ${fmt(midShape)} does not fit layer ${layer}`);
    }
  } else if (numel(downShape.slice(1)) !== inner) {
    fail(a.downKey, `down weight ${fmt(downShape)} does not fit layer ${layer} (input size ${inner})`);
  }
}
