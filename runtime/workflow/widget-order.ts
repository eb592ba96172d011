import { hasControlWidget, type ComboInputSpec, type InputSpec } from '../nodes-api/spec.js';

/** Values of the editor's seed companion widget, which sits right after its INT in `widgets_values`. */
export const CONTROL_WIDGET_VALUES: ReadonlySet<string> = new Set(['fixed', 'increment', 'decrement', 'randomize']);

export type ControlMode = 'fixed' | 'increment' | 'decrement' | 'randomize';

export interface WidgetSlot {
  name: string;
  spec: InputSpec;
}

export interface OrderedWidgets {
  values: Map<string, unknown>;
  /** The companion value of each seed-like widget that had one (booleans of old files read as randomize/fixed). */
  controls: Map<string, ControlMode>;
}

/** Whether a value could legitimately be the next widget's own value rather than a companion. */
function couldHold(spec: InputSpec | undefined, value: unknown): boolean {
  if (!spec) return false;
  if (typeof value === 'boolean') return spec.type === 'BOOLEAN';
  if (spec.type === 'STRING') return true;
  if (spec.type !== 'COMBO') return false;
  const options = (spec as ComboInputSpec).options;
  return typeof options === 'function' || options.includes(value as string);
}

function companionMode(value: unknown): ControlMode | undefined {
  if (typeof value === 'string' && CONTROL_WIDGET_VALUES.has(value)) return value as ControlMode;
  // Editors before the four-way control widget saved a "randomize after every generation" toggle.
  if (typeof value === 'boolean') return value ? 'randomize' : 'fixed';
  return undefined;
}

/**
 * Pairs positional `widgets_values` with widget names. The editor keeps one value per widget, in input
 * order, including widgets turned into sockets; a seed-like widget carries a companion value right after
 * it. The companion is consumed only when it is really there, so files saved without it still line up.
 * Old editors gave every INT a companion when it was named like a seed (and stored it as a boolean), so an
 * INT followed by a companion-looking value that the next widget could not hold is treated the same way.
 */
export function orderWidgetValues(widgets: readonly WidgetSlot[], list: readonly unknown[]): OrderedWidgets {
  const values = new Map<string, unknown>();
  const controls = new Map<string, ControlMode>();
  let index = 0;
  widgets.forEach((widget, position) => {
    if (index >= list.length) return;
    values.set(widget.name, list[index++]);
    if (index >= list.length) return;
    const next = list[index];
    const mode = companionMode(next);
    if (mode === undefined) return;
    const declared = hasControlWidget(widget.spec);
    const seedLike = widget.spec.type === 'INT' && !couldHold(widgets[position + 1]?.spec, next);
    // A boolean right after a declared control widget is still the old toggle unless the next widget is a BOOLEAN.
    const oldToggle = typeof next === 'boolean' && declared && !couldHold(widgets[position + 1]?.spec, next);
    if ((declared && typeof next === 'string') || oldToggle || seedLike) {
      controls.set(widget.name, mode);
      index++;
    }
  });
  return { values, controls };
}
