import type { LGraphNode } from '@comfyorg/litegraph';
import type { ResolvedInput } from '../../nodes/registry.js';
import type { BooleanInputSpec, ComboInputSpec, FloatInputSpec, IntInputSpec, StringInputSpec } from '../../nodes/spec.js';
import { hasControlWidget } from '../../nodes/spec.js';
import { CONTROL_VALUES, CONTROL_WIDGET_NAME } from './defs.js';

/** What widgets need from the app: a change notification, text editing and uploads. */
export interface WidgetHooks {
  changed(node: LGraphNode): void;
  editText(node: LGraphNode, widget: MultilineWidget): void;
  upload(node: LGraphNode, combo: { value: unknown; options: { values?: unknown } }): void;
}

/** A prompt box drawn on the canvas; editing happens in a textarea laid over it (see text-editor.ts). */
export interface MultilineWidget {
  type: 'resflow_multiline';
  name: string;
  value: string;
  y: number;
  options: { multiline: true; placeholder?: string };
  computeSize(width?: number): [number, number];
  draw(ctx: CanvasRenderingContext2D, node: LGraphNode, width: number, y: number, H: number): void;
  mouse(event: { type: string }, pos: [number, number], node: LGraphNode): boolean;
}

export const MULTILINE_HEIGHT = 84;

function decimalsOf(step: number): number {
  const text = String(step);
  return text.includes('e-') ? Number(text.split('e-')[1]) : (text.split('.')[1]?.length ?? 0);
}

function wrapLines(ctx: CanvasRenderingContext2D, text: string, width: number, max: number): string[] {
  const out: string[] = [];
  for (const paragraph of text.split('\n')) {
    let line = '';
    for (const word of paragraph.split(' ')) {
      const next = line ? `${line} ${word}` : word;
      if (ctx.measureText(next).width > width && line) {
        out.push(line);
        line = word;
      } else line = next;
      if (out.length >= max) return out;
    }
    out.push(line);
    if (out.length >= max) return out;
  }
  return out;
}

function multilineWidget(name: string, value: string, spec: StringInputSpec, hooks: WidgetHooks): MultilineWidget {
  return {
    type: 'resflow_multiline',
    name,
    value,
    y: 0,
    options: { multiline: true, placeholder: spec.placeholder },
    computeSize: (width = 0) => [width, MULTILINE_HEIGHT],
    draw(ctx, _node, width, y) {
      const x = 15;
      const w = width - 30;
      const h = MULTILINE_HEIGHT - 6;
      ctx.save();
      ctx.fillStyle = '#1b1d22';
      ctx.strokeStyle = '#4a4f5a';
      ctx.beginPath();
      ctx.roundRect(x, y, w, h, 6);
      ctx.fill();
      ctx.stroke();
      ctx.font = '12px sans-serif';
      ctx.fillStyle = this.value ? '#d6d9e0' : '#707582';
      const lines = wrapLines(ctx, this.value || (this.options.placeholder ?? this.name), w - 12, 4);
      lines.forEach((line, i) => ctx.fillText(line, x + 6, y + 16 + i * 15, w - 12));
      ctx.restore();
    },
    mouse(event, _pos, node) {
      if (event.type === 'pointerdown') hooks.editText(node, this);
      return true;
    },
  };
}

/** Adds the widgets for one input: the value widget, and a control widget after seed-like inputs. */
export function addInputWidget(node: LGraphNode, input: ResolvedInput, hooks: WidgetHooks): void {
  const changed = () => hooks.changed(node);
  const { spec, name } = input;
  switch (spec.type) {
    case 'INT': {
      const s = spec as IntInputSpec;
      const opts = { min: s.min ?? -Number.MAX_SAFE_INTEGER, max: s.max ?? Number.MAX_SAFE_INTEGER, step2: s.step ?? 1, precision: 0, round: 1 };
      node.addWidget(s.display === 'slider' ? 'slider' : 'number', name, s.default ?? s.min ?? 0, changed, opts);
      break;
    }
    case 'FLOAT': {
      const s = spec as FloatInputSpec;
      const step = s.step ?? 0.01;
      const precision = typeof s.round === 'number' ? decimalsOf(s.round) : Math.min(6, Math.max(decimalsOf(step), 1));
      const opts = { min: s.min ?? -Infinity, max: s.max ?? Infinity, step2: step, precision, round: typeof s.round === 'number' ? s.round : undefined };
      node.addWidget(s.display === 'slider' ? 'slider' : 'number', name, s.default ?? s.min ?? 0, changed, opts);
      break;
    }
    case 'STRING': {
      const s = spec as StringInputSpec;
      if (s.multiline) node.addCustomWidget(multilineWidget(name, s.default ?? '', s, hooks) as never);
      else node.addWidget('text', name, s.default ?? '', changed, {});
      break;
    }
    case 'BOOLEAN': {
      const s = spec as BooleanInputSpec;
      node.addWidget('toggle', name, s.default ?? false, changed, { on: s.label_on ?? 'true', off: s.label_off ?? 'false' });
      break;
    }
    case 'COMBO': {
      const s = spec as ComboInputSpec;
      const values = Array.isArray(s.options) ? [...s.options].map(String) : [];
      node.addWidget('combo', name, s.default !== undefined ? String(s.default) : (values[0] ?? ''), changed, { values });
      break;
    }
    default:
      return;
  }
  if (hasControlWidget(spec)) {
    node.addWidget('combo', CONTROL_WIDGET_NAME, 'randomize', changed, { values: [...CONTROL_VALUES] });
  }
}

/** Buttons come last: litegraph leaves holes in `widgets_values` for unserialized widgets placed earlier. */
export function addUploadButton(node: LGraphNode, comboName: string, hooks: WidgetHooks): void {
  const combo = node.widgets?.find((w: { name: string }) => w.name === comboName);
  if (!combo) return;
  const button = node.addWidget('button', 'choose file to upload', null, () => hooks.upload(node, combo as never), {});
  button.serialize = false;
}
