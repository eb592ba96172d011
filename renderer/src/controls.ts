import type { LGraphNode } from '@comfyorg/litegraph';
import { CONTROL_WIDGET_NAME } from './defs.js';

// Seeds beyond 2^53 cannot be represented exactly in the editor anyway.
const SAFE_MAX = Number.MAX_SAFE_INTEGER;

/** The next value of a seed-like widget under its control mode, clamped to the widget's range. */
export function nextControlledValue(mode: string, value: number, options: { min?: number; max?: number; step2?: number }, random = Math.random): number {
  const min = Math.max(options.min ?? 0, -SAFE_MAX);
  const max = Math.min(options.max ?? SAFE_MAX, SAFE_MAX);
  const step = options.step2 ?? 1;
  let next = value;
  if (mode === 'increment') next = value + step;
  else if (mode === 'decrement') next = value - step;
  else if (mode === 'randomize') next = min + Math.floor(random() * (Math.min(max, min + 2 ** 50) - min + 1));
  return Math.min(max, Math.max(min, next));
}

/**
 * ComfyUI's "control after generate": once a prompt is queued, each controlled widget moves to its
 * next value, so the next run differs while the queued one keeps what it was sent with. Returns
 * whether anything changed.
 */
export function applyControlsAfterQueue(nodes: readonly LGraphNode[], random = Math.random): boolean {
  let changed = false;
  for (const node of nodes) {
    const widgets = node.widgets ?? [];
    widgets.forEach((widget: { name: string; value: unknown }, i: number) => {
      if (widget.name !== CONTROL_WIDGET_NAME || i === 0) return;
      const target = widgets[i - 1] as { value: unknown; options: unknown };
      const mode = String(widget.value);
      if (mode === 'fixed' || typeof target.value !== 'number') return;
      const next = nextControlledValue(mode, target.value, target.options as { min?: number; max?: number; step2?: number }, random);
      if (next !== target.value) {
        target.value = next;
        changed = true;
      }
    });
  }
  return changed;
}
