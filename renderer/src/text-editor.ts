import type { LGraphNode } from '@comfyorg/litegraph';
import type { GraphView } from './view.js';
import { MULTILINE_HEIGHT, type MultilineWidget } from './widgets.js';

/**
 * Edits a prompt widget in a real textarea laid over it on the canvas (typing, selection and IME
 * work as in any text field). Enter inserts a newline; Ctrl+Enter or leaving the field commits;
 * Escape cancels.
 */
export function openTextEditor(view: GraphView, node: LGraphNode, widget: MultilineWidget, onCommit: () => void): HTMLTextAreaElement {
  document.querySelector('textarea.widget-editor')?.dispatchEvent(new Event('blur'));
  const scale = view.canvas.ds.scale;
  const [cx, cy] = view.canvas.ds.convertOffsetToCanvas([node.pos[0] + 15, node.pos[1] + widget.y]);
  // Canvas offsets are CSS pixels (litegraph applies devicePixelRatio itself).
  const rect = view.element.getBoundingClientRect();
  const area = document.createElement('textarea');
  area.className = 'widget-editor';
  area.value = widget.value;
  area.setAttribute('aria-label', widget.name);
  Object.assign(area.style, {
    left: `${rect.left + cx}px`,
    top: `${rect.top + cy}px`,
    width: `${Math.max(160, (node.size[0] - 30) * scale)}px`,
    height: `${Math.max(60, (MULTILINE_HEIGHT - 6) * scale * 2)}px`,
    fontSize: `${Math.max(11, 13 * scale)}px`,
  });
  let done = false;
  const finish = (commit: boolean) => {
    if (done) return;
    done = true;
    if (commit && area.value !== widget.value) {
      widget.value = area.value;
      onCommit();
    }
    area.remove();
    view.redraw();
  };
  area.addEventListener('blur', () => finish(true));
  area.addEventListener('keydown', (e) => {
    e.stopPropagation();
    if (e.key === 'Escape') finish(false);
    else if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) finish(true);
  });
  area.addEventListener('keyup', (e) => e.stopPropagation());
  document.body.append(area);
  setTimeout(() => area.focus(), 0);
  return area;
}
