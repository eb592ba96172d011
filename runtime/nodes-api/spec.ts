import { z } from 'zod';

/**
 * The contract a node implements. Field names that travel to the editor unchanged (min, max, step,
 * default, multiline, control_after_generate, tooltip...) keep ComfyUI's spelling so `/object_info`
 * is a projection, not a translation.
 */

export const WIDGET_TYPES = ['INT', 'FLOAT', 'STRING', 'BOOLEAN', 'COMBO'] as const;
export type WidgetType = (typeof WIDGET_TYPES)[number];

/** Link-only data types are open strings: models, adapters and custom nodes add their own. */
export type LinkType = string;

export type ComboValue = string | number;
/** Evaluated at validation and describe time so a model folder listing is never stale. */
export type ComboProvider = () => readonly ComboValue[] | Promise<readonly ComboValue[]>;

interface CommonInputOptions {
  tooltip?: string;
  /** Starts as a socket instead of a widget; the value must then come from a link or the API prompt. */
  forceInput?: boolean;
  advanced?: boolean;
}

export interface IntInputSpec extends CommonInputOptions {
  type: 'INT';
  default?: number;
  min?: number;
  max?: number;
  step?: number;
  /** Adds the editor's fixed/increment/decrement/randomize companion widget (seeds). */
  control_after_generate?: boolean;
  display?: 'number' | 'slider';
}

export interface FloatInputSpec extends CommonInputOptions {
  type: 'FLOAT';
  default?: number;
  min?: number;
  max?: number;
  step?: number;
  round?: number | false;
  display?: 'number' | 'slider';
}

export interface StringInputSpec extends CommonInputOptions {
  type: 'STRING';
  default?: string;
  multiline?: boolean;
  placeholder?: string;
  dynamicPrompts?: boolean;
}

export interface BooleanInputSpec extends CommonInputOptions {
  type: 'BOOLEAN';
  default?: boolean;
  label_on?: string;
  label_off?: string;
}

export interface ComboInputSpec extends CommonInputOptions {
  type: 'COMBO';
  options: readonly ComboValue[] | ComboProvider;
  default?: ComboValue;
  control_after_generate?: boolean;
  image_upload?: boolean;
}

export interface LinkInputSpec {
  /** Anything but a widget type; `*` accepts every type. Comma-separated unions ("IMAGE,MASK") are allowed. */
  type: LinkType;
  tooltip?: string;
}

export type WidgetInputSpec = IntInputSpec | FloatInputSpec | StringInputSpec | BooleanInputSpec | ComboInputSpec;
export type InputSpec = WidgetInputSpec | LinkInputSpec;

/** ComfyUI's hidden inputs: filled in by the executor, never shown in the editor. */
export type HiddenInputKind = 'PROMPT' | 'EXTRA_PNGINFO' | 'UNIQUE_ID';

export interface NodeInputsSpec {
  required?: Record<string, InputSpec>;
  optional?: Record<string, InputSpec>;
  hidden?: Record<string, HiddenInputKind>;
}

export interface OutputSpec {
  type: LinkType;
  /** Defaults to the type, as ComfyUI's RETURN_NAMES does. */
  name?: string;
  /**
   * Advertised as `output_is_list` so the editor can show it. Unlike ComfyUI, the executor does not
   * map downstream nodes over list items: the node returns an array in this slot and consumers receive
   * that array whole. Batches belong inside values (a tensor with a batch dimension), not in lists.
   */
  isList?: boolean;
  tooltip?: string;
}

/** What the editor shows for an output node's result: lists keyed by kind, e.g. `{ images: [{ filename, subfolder, type }] }`. */
export type UiOutput = Record<string, unknown[]>;

export type NodeOutputs = readonly unknown[];

/** Output nodes (and any node that wants to show something) return this instead of a bare tuple. */
export interface NodeUiResult {
  ui?: UiOutput;
  result?: NodeOutputs;
}

export type NodeReturn = NodeOutputs | NodeUiResult | void;

export interface PreviewImage {
  format: 'JPEG' | 'PNG' | 'WEBP';
  data: Uint8Array;
}

export interface NodeContext {
  readonly nodeId: string;
  readonly promptId: string;
  /** Aborted by `Executor.interrupt()`; long loops should check it or call `progress`, which throws when aborted. */
  readonly signal: AbortSignal;
  /** `metrics` (e.g. training loss, lr, samples/s) travel with the progress event for the CLI bar and the editor. */
  progress(value: number, max: number, preview?: PreviewImage, metrics?: Record<string, number>): void;
  log(...args: unknown[]): void;
}

export interface NodeSpec {
  /** The class_type used in prompts and workflows. */
  name: string;
  displayName?: string;
  category: string;
  description?: string;
  inputs?: NodeInputsSpec;
  outputs?: readonly OutputSpec[];
  /** Output nodes are the roots that decide what a prompt runs. */
  outputNode?: boolean;
  deprecated?: boolean;
  experimental?: boolean;
  /**
   * ComfyUI's IS_CHANGED: receives the widget values; a different return value from the previous run
   * invalidates the cached output (e.g. return a file's mtime). Returning NaN means "always re-run".
   */
  isChanged?(widgets: Record<string, unknown>): unknown;
  execute(inputs: Record<string, unknown>, ctx: NodeContext): NodeReturn | Promise<NodeReturn>;
}

export function isWidgetType(type: string): type is WidgetType {
  return (WIDGET_TYPES as readonly string[]).includes(type);
}

export function isWidgetSpec(spec: InputSpec): spec is WidgetInputSpec {
  return isWidgetType(spec.type);
}

/** Whether the editor draws a widget for it (and so whether it owns a slot in `widgets_values`). */
export function hasWidget(spec: InputSpec): spec is WidgetInputSpec {
  return isWidgetSpec(spec) && !spec.forceInput;
}

export function hasControlWidget(spec: InputSpec): boolean {
  return (spec.type === 'INT' || spec.type === 'COMBO') && (spec as IntInputSpec | ComboInputSpec).control_after_generate === true;
}

// ---- zod schemas: specs come from code, but custom packs make them a boundary worth guarding ----

const fn = z.custom<(...args: never[]) => unknown>((v) => typeof v === 'function', 'expected a function');
const finite = z.number().refine(Number.isFinite, 'must be finite');
const common = { tooltip: z.string().optional(), forceInput: z.boolean().optional(), advanced: z.boolean().optional() };
const display = z.enum(['number', 'slider']).optional();

const widgetSchemas: Record<WidgetType, z.ZodType> = {
  INT: z.strictObject({
    type: z.literal('INT'),
    default: z.number().int().optional(),
    min: finite.optional(),
    max: finite.optional(),
    step: z.number().positive().optional(),
    control_after_generate: z.boolean().optional(),
    display,
    ...common,
  }),
  FLOAT: z.strictObject({
    type: z.literal('FLOAT'),
    default: finite.optional(),
    min: finite.optional(),
    max: finite.optional(),
    step: z.number().positive().optional(),
    round: z.union([z.number().positive(), z.literal(false)]).optional(),
    display,
    ...common,
  }),
  STRING: z.strictObject({
    type: z.literal('STRING'),
    default: z.string().optional(),
    multiline: z.boolean().optional(),
    placeholder: z.string().optional(),
    dynamicPrompts: z.boolean().optional(),
    ...common,
  }),
  BOOLEAN: z.strictObject({
    type: z.literal('BOOLEAN'),
    default: z.boolean().optional(),
    label_on: z.string().optional(),
    label_off: z.string().optional(),
    ...common,
  }),
  COMBO: z.strictObject({
    type: z.literal('COMBO'),
    options: z.union([z.array(z.union([z.string(), z.number()])), fn]),
    default: z.union([z.string(), z.number()]).optional(),
    control_after_generate: z.boolean().optional(),
    image_upload: z.boolean().optional(),
    ...common,
  }),
};

const linkInputSchema = z.strictObject({
  type: z.string().regex(/^[A-Za-z0-9_*]+( *, *[A-Za-z0-9_*]+)*$/, 'link types are words like MODEL or unions like IMAGE,MASK'),
  tooltip: z.string().optional(),
});

function forwardIssues(error: z.ZodError, ctx: z.RefinementCtx): void {
  for (const issue of error.issues) ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path });
}

/** Dispatches on `type` so an error names the real problem instead of "no union member matched". */
const inputSpecSchema = z.unknown().superRefine((value, ctx) => {
  const typed = z.looseObject({ type: z.string().min(1) }).safeParse(value);
  if (!typed.success) return forwardIssues(typed.error, ctx);
  const type = typed.data.type;
  const parsed = (isWidgetType(type) ? widgetSchemas[type] : linkInputSchema).safeParse(value);
  if (!parsed.success) return forwardIssues(parsed.error, ctx);
  const spec = value as WidgetInputSpec;
  if (spec.type === 'INT' || spec.type === 'FLOAT') {
    const { min, max, default: def } = spec;
    if (min !== undefined && max !== undefined && min > max) ctx.addIssue({ code: 'custom', message: `min ${min} > max ${max}`, path: ['min'] });
    if (def !== undefined && ((min !== undefined && def < min) || (max !== undefined && def > max)))
      ctx.addIssue({ code: 'custom', message: `default ${def} outside [${min}, ${max}]`, path: ['default'] });
  }
  if (spec.type === 'COMBO' && Array.isArray(spec.options) && spec.default !== undefined && !spec.options.includes(spec.default))
    ctx.addIssue({ code: 'custom', message: `default ${JSON.stringify(spec.default)} is not one of the options`, path: ['default'] });
});

const inputName = z.string().min(1);
const inputGroup = z.record(inputName, inputSpecSchema);

const outputSpecSchema = z.strictObject({
  type: z.string().min(1),
  name: z.string().min(1).optional(),
  isList: z.boolean().optional(),
  tooltip: z.string().optional(),
});

export const nodeSpecSchema = z
  .strictObject({
    name: z.string().min(1).regex(/^\S(.*\S)?$/, 'no leading/trailing spaces'),
    displayName: z.string().min(1).optional(),
    category: z.string().min(1),
    description: z.string().optional(),
    inputs: z
      .strictObject({
        required: inputGroup.optional(),
        optional: inputGroup.optional(),
        hidden: z.record(inputName, z.enum(['PROMPT', 'EXTRA_PNGINFO', 'UNIQUE_ID'])).optional(),
      })
      .optional(),
    outputs: z.array(outputSpecSchema).optional(),
    outputNode: z.boolean().optional(),
    deprecated: z.boolean().optional(),
    experimental: z.boolean().optional(),
    isChanged: fn.optional(),
    execute: fn,
  })
  .superRefine((spec, ctx) => {
    const seen = new Set<string>();
    for (const group of ['required', 'optional', 'hidden'] as const) {
      for (const name of Object.keys(spec.inputs?.[group] ?? {})) {
        if (seen.has(name)) ctx.addIssue({ code: 'custom', message: `input "${name}" is declared twice`, path: ['inputs', group, name] });
        // JS objects list integer-like keys first, and input order is what maps widgets_values.
        if (/^(0|[1-9]\d*)$/.test(name)) ctx.addIssue({ code: 'custom', message: 'input names must not be integers (object key order)', path: ['inputs', group, name] });
        seen.add(name);
      }
    }
  });

/** Identity helper that keeps literal inference for spec objects written inline. */
export function defineNode(spec: NodeSpec): NodeSpec {
  return spec;
}
